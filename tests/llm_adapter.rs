//! `examples/llm/verbalizer_llm.py`, the adapter that runs a local GGUF LLM (llama.cpp) as a
//! taskdb model, checked against a scripted stand-in for llama-cpp-python
//! (`fixtures/models/fake_llama`, whose logits are known in closed form): the word
//! probabilities are exact (multi-token words included), the prompt prefix stays in the KV
//! cache, the answer cache makes a rerun load no model, and prompts ingested through it are
//! ranked by `select-prompt`. The real LLM run is scripts/quality/prompt_selection.sh.

mod ingest_common;

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};

use ingest_common::*;

/// The adapter command for the stand-in model (PYTHONPATH puts the fake `llama_cpp` first).
fn adapter(words: &str, cache: Option<&Path>) -> String {
    let mut c = format!(
        "PYTHONPATH={} python3 {} --model {} --words {words}",
        fxs("models/fake_llama"),
        root("examples/llm/verbalizer_llm.py"),
        fxs("models/fake_llama/tiny-lm.json"),
    );
    if let Some(p) = cache {
        c += &format!(" --cache {}", p.display());
    }
    c
}

fn root(rel: &str) -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join(rel)
        .to_string_lossy()
        .into_owned()
}

/// Runs a shell command with `input` on stdin and extra environment.
fn sh_output(cmd: &str, input: &str, env: &[(&str, &str)]) -> std::process::Output {
    let mut child = Command::new("sh")
        .args(["-c", cmd])
        .envs(env.iter().copied())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

/// [`sh_output`] that must succeed; returns stdout.
fn sh(cmd: &str, input: &str, env: &[(&str, &str)]) -> String {
    let out = sh_output(cmd, input, env);
    assert!(
        out.status.success(),
        "{cmd}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn scores(stdout: &str) -> Vec<serde_json::Value> {
    stdout
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()["scores"].clone())
        .collect()
}

#[test]
fn the_adapter_scores_words_exactly_reuses_the_prefix_and_answers_reruns_from_its_cache() {
    let d = tempfile::tempdir().unwrap();
    let log = d.path().join("evals.log");
    let cache = d.path().join("cache.jsonl");
    let input = "{\"id\": 0, \"text\": \"Text: good good fun\"}\n\
                 {\"id\": 1, \"text\": \"Text: meh\"}\n\
                 {\"id\": 2, \"text\": \"Text: bad\"}\n";
    let cmd = adapter("positive,negative,politics,sports", Some(&cache));
    let out = sh(&cmd, input, &[("FAKE_LLAMA_LOG", log.to_str().unwrap())]);
    let s = scores(&out);
    assert_eq!(s.len(), 3, "{out}");
    // The stand-in's logits (fixtures/models/fake_llama/llama_cpp): positive = s,
    // negative = -s (s: positive minus negative words after "Text"), sports = 0.1 × the
    // number of tokens after "Text", poli = 0, the other 251 ids -2; after "poli", tics = 5.
    let v = 256.0_f64;
    let e = f64::exp;
    let z = |s: f64, n: f64| e(s) + e(-s) + e(0.1 * n) + 1.0 + (v - 4.0) * e(-2.0);
    let after_poli = e(5.0) + (v - 1.0) * e(-2.0);
    let expect = [
        (0, "positive", e(3.0) / z(3.0, 4.0)),
        (0, "negative", e(-3.0) / z(3.0, 4.0)),
        (0, "sports", e(0.4) / z(3.0, 4.0)),
        (1, "positive", 1.0 / z(0.0, 2.0)),
        (1, "sports", e(0.2) / z(0.0, 2.0)),
        // a word of two tokens: p(poli | prompt) * p(tics | prompt, poli)
        (1, "politics", 1.0 / z(0.0, 2.0) * e(5.0) / after_poli),
        (2, "negative", e(1.0) / z(-1.0, 2.0)),
    ];
    for (row, word, p) in expect {
        let got = s[row][word].as_f64().unwrap();
        // (the stand-in hands over f32 logits, as llama.cpp does)
        assert!((got - p).abs() < 1e-6 * p, "row {row} {word}: {got} vs {p}");
    }
    // KV-cache reuse: the first prompt is evaluated whole (BOS + 5 tokens); the next two
    // share "BOS Text :" with it and evaluate only their own token; each "politics" costs
    // one more eval (its first token, to score the second).
    let evals: Vec<usize> = std::fs::read_to_string(&log)
        .unwrap()
        .lines()
        .map(|l| l.parse().unwrap())
        .collect();
    assert_eq!(evals, vec![6, 1, 1, 1, 1, 1], "eval calls");
    // A rerun is answered from the cache without loading the model.
    let again = sh(&cmd, input, &[("FAKE_LLAMA_FAIL", "1")]);
    assert_eq!(again, out);
    // Without the cache the stand-in refuses to load: the rerun above really was cached.
    let refused = sh_output(
        &adapter("positive,negative", None),
        input,
        &[("FAKE_LLAMA_FAIL", "1")],
    );
    assert!(!refused.status.success());
}

/// Prompts ingested through the adapter: the sentiment prompt's entry is nearest the
/// sentiment dataset; a prompt of another task (its answer words follow the text's length)
/// ranks below it; swapped verbalizers label U the other way round and get exactly the same
/// similarity (a task embedding does not see label names: FUTE's rule cannot catch a swap);
/// a prompt whose answer never depends on the text is refused with the reason. The
/// provenance keeps each prompt.
#[test]
fn prompts_ingested_through_the_adapter_are_ranked_by_select_prompt() {
    let d = tempfile::tempdir().unwrap();
    let db = d.path().join("llm.taskdb");
    let f = fxs("datasets/sentiment_a.jsonl");
    ok(
        run_tiny(&db, &["ingest", "dataset", "sentiment_a", &f]),
        "ingest dataset",
    );
    let file = d.path().join("prompts.jsonl");
    let line = |name: &str, prompt: &str, pos: &str, neg: &str| {
        format!(
            "{{\"name\": \"{name}\", \"prompt\": \"{prompt} Text: {{text}}\", \
             \"verbalizers\": [\"positive={pos}\", \"negative={neg}\"], \"tags\": {{\"llm\": \"fake\"}}}}\n"
        )
    };
    let lines = [
        line(
            "llm_sentiment",
            "Positive or negative?",
            "positive",
            "negative",
        ),
        line("llm_topic", "Sports or politics?", "sports", "politics"),
        line(
            "llm_swapped",
            "Positive or negative?",
            "negative",
            "positive",
        ),
    ];
    std::fs::write(&file, lines.concat()).unwrap();
    let cmd = adapter("positive,negative,sports,politics", None);
    let ingest = |file: &Path| {
        run_tiny(
            &db,
            &[
                "ingest",
                "prompts",
                file.to_str().unwrap(),
                "--command",
                &cmd,
            ],
        )
    };
    ok(ingest(&file), "ingest prompts");
    let sel = json(&ok(
        run(
            &db,
            &[
                "select-prompt",
                "sentiment_a",
                "--tag",
                "llm=fake",
                "--json",
            ],
        ),
        "select-prompt",
    ));
    let row = |name: &str| {
        sel.as_array()
            .unwrap()
            .iter()
            .find(|r| r["name"] == name)
            .unwrap_or_else(|| panic!("{name} in {sel}"))["similarity"]
            .as_f64()
            .unwrap()
    };
    let (right, topic, swapped) = (row("llm_sentiment"), row("llm_topic"), row("llm_swapped"));
    assert!(right > topic + 0.1, "{sel}");
    assert_eq!(right, swapped, "{sel}");
    assert_eq!(sel[2]["name"], "llm_topic", "{sel}");
    let show = json(&ok(run(&db, &["show", "llm_topic", "--json"]), "show"));
    assert!(
        show.to_string()
            .contains("Sports or politics? Text: {text}"),
        "{show}"
    );
    // "poli" then "tics": the answer words' ratio is the same for every text.
    let constant = d.path().join("constant.jsonl");
    std::fs::write(
        &constant,
        line("llm_constant", "Which?", "politics", "poli"),
    )
    .unwrap();
    let err = fails(ingest(&constant), "a prompt with constant answers");
    assert!(
        err.contains("do not depend on the input")
            && err.contains("line 1 (prompt \"llm_constant\")"),
        "{err}"
    );
}
