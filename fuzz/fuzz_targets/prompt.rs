//! `--prompt` templates and `--verbalizer` specs, and mapping replies through them.
//! Input: NUL-separated fields: template, spec, spec, ..., reply (last).
#![no_main]

use libfuzzer_sys::fuzz_target;
use taskdb_sources::{PromptTemplate, Verbalizers};

fuzz_target!(|data: &[u8]| {
    let s = String::from_utf8_lossy(data);
    let mut parts: Vec<&str> = s.split('\0').collect();
    let reply = parts.pop().unwrap_or("");
    let Some((tpl, specs)) = parts.split_first() else {
        return;
    };
    if let Ok(t) = PromptTemplate::parse(tpl) {
        let _ = t.render(reply, Some(reply));
    }
    if let Ok(v) = Verbalizers::parse(specs) {
        let _ = v.map_reply(reply);
        let scores = reply
            .split_whitespace()
            .enumerate()
            .map(|(i, w)| (w.to_string(), i as f64))
            .collect();
        let _ = v.map_scores(&scores);
        let _ = v.labels();
    }
});
