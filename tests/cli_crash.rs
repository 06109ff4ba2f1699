//! Crash safety: SIGKILL in the middle of a batch import leaves a database that opens, passes
//! `check`, holds every committed batch and nothing of the interrupted one.

mod engine_common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use engine_common::*;
use taskdb::{Filter, TaskDb};

const BIN: &str = env!("CARGO_BIN_EXE_taskdb");
const BATCH: usize = 50;

#[test]
fn sigkill_mid_import_keeps_whole_batches_only() {
    let d = tempfile::tempdir().unwrap();
    let n = 6000;
    let vecs = clustered(n, 32, 20, 31);
    let lines: Vec<String> = vecs
        .iter()
        .enumerate()
        .map(|(i, v)| jsonl_line(&format!("c{i:05}"), "dataset", "s", v))
        .collect();
    let file = d.path().join("big.jsonl");
    std::fs::write(&file, lines.join("\n") + "\n").unwrap();

    for (round, kill_after) in [1usize, 3, 7].into_iter().enumerate() {
        let db = d.path().join(format!("crash{round}.taskdb"));
        let mut child = Command::new(BIN)
            .arg("--db")
            .arg(&db)
            .arg("import")
            .arg(&file)
            .args(["--batch-size", &BATCH.to_string()])
            .stderr(Stdio::piped())
            .stdout(Stdio::null())
            .spawn()
            .unwrap();
        let mut reported = 0usize;
        let mut stderr = BufReader::new(child.stderr.take().unwrap());
        let mut line = String::new();
        while stderr.read_line(&mut line).unwrap() > 0 {
            if let Some(rest) = line.strip_prefix("committed batch ") {
                let b: usize = rest.split_whitespace().next().unwrap().parse().unwrap();
                reported = reported.max(b);
                if b >= kill_after {
                    // SAFETY: plain syscall on our own child's pid.
                    unsafe {
                        libc::kill(child.id() as i32, libc::SIGKILL);
                    }
                    break;
                }
            }
            line.clear();
        }
        let status = child.wait().unwrap();
        assert!(
            reported >= kill_after,
            "round {round}: saw {reported} batches"
        );
        assert!(
            !status.success(),
            "round {round}: import finished before the kill; make the file bigger"
        );

        let mut tdb = TaskDb::open(&db).unwrap();
        let report = tdb.check().unwrap();
        assert!(report.ok(), "round {round}: {:?}", report.problems);
        let names: Vec<String> = tdb
            .list(&Filter::all())
            .unwrap()
            .into_iter()
            .map(|e| e.name)
            .collect();
        // Whole batches only, every reported one present, in file order.
        assert_eq!(names.len() % BATCH, 0, "round {round}: partial batch");
        assert!(
            names.len() >= reported * BATCH,
            "round {round}: lost a committed batch"
        );
        assert!(names.len() < n, "round {round}: nothing was interrupted");
        let want: Vec<String> = (0..names.len()).map(|i| format!("c{i:05}")).collect();
        assert_eq!(names, want, "round {round}");
        // The write log (issue 12) holds one whole record per committed batch, in a whole
        // chain: no gap, no partial record, nothing of the killed batch.
        let chain = tdb.verify_log().unwrap();
        assert!(
            chain.problems.is_empty(),
            "round {round}: {:?}",
            chain.problems
        );
        let log = tdb.log(0).unwrap();
        let puts: Vec<&taskdb::LogRecord> = log.iter().filter(|r| r.op == "put").collect();
        assert_eq!(
            puts.len(),
            names.len() / BATCH,
            "round {round}: one record per batch"
        );
        let logged: Vec<String> = puts
            .iter()
            .flat_map(|r| r.entries.iter().map(|e| e.name.clone()))
            .collect();
        assert_eq!(
            logged, names,
            "round {round}: the log names exactly the committed entries"
        );
        assert_eq!(log[0].op, "create");
        assert!(log.windows(2).all(|w| w[1].seq == w[0].seq + 1));
        // And it answers queries.
        let hits = tdb
            .nearest(
                &taskdb::Query::dense("s", vecs[0].clone()),
                5,
                &Filter::all(),
            )
            .unwrap();
        assert_eq!(hits[0].name, "c00000");
    }
}
