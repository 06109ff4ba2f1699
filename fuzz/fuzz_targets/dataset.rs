//! Dataset readers (JSONL, CSV, TSV, each plain, gzip, or truncated gzip) over arbitrary
//! bytes. The first byte picks the format and the options; the rest is the file.
#![no_main]

use std::io::Write;

use libfuzzer_sys::fuzz_target;
use taskdb_sources::{read_dataset, DatasetOptions, TaskKind};

fuzz_target!(|data: &[u8]| {
    let Some((&sel, body)) = data.split_first() else {
        return;
    };
    let ext = ["jsonl", "csv", "tsv"][(sel % 3) as usize];
    let gz = (sel >> 2) & 3; // 0, 3: plain; 1: gzip; 2: gzip cut at a fuzzer-chosen point
    let task = [
        TaskKind::Auto,
        TaskKind::Classification,
        TaskKind::Regression,
    ][((sel >> 4) % 3) as usize];
    let dir = std::env::temp_dir().join(format!("taskdb-fuzz-{}", std::process::id()));
    let _ = std::fs::create_dir_all(&dir);
    let path = dir.join(format!(
        "d.{ext}{}",
        if gz == 1 || gz == 2 { ".gz" } else { "" }
    ));
    let bytes = match gz {
        1 | 2 => {
            let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            e.write_all(body).unwrap();
            let mut v = e.finish().unwrap();
            if gz == 2 && !v.is_empty() {
                let cut = body.first().copied().unwrap_or(0) as usize % v.len();
                v.truncate(cut.max(2));
            }
            v
        }
        _ => body.to_vec(),
    };
    std::fs::write(&path, &bytes).unwrap();
    let opts = DatasetOptions {
        task,
        limit: if sel & 0x40 != 0 { Some(3) } else { None },
        ..DatasetOptions::default()
    };
    let _ = read_dataset(&path, &opts);
});
