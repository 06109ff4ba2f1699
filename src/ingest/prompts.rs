//! A prompts file: several (LLM, prompt) model entries at once (`taskdb ingest prompts`). One
//! JSON object a line: `{"name", "prompt", "verbalizers"?: ["LABEL=w1|w2", …], "tags"?: {…}}`.
//! The whole file is checked before any model runs; every error names the file and line.

use std::collections::{BTreeMap, HashMap};
use std::io::{BufRead, BufReader};
use std::path::Path;

use serde::Deserialize;
use taskdb_sources::{PromptTemplate, Verbalizers};

use crate::error::{Error, Result};

/// One line of a prompts file, checked.
#[derive(Debug, Clone)]
pub struct PromptSpec {
    /// The model entry's name (one per (LLM, prompt) pair).
    pub name: String,
    /// The prompt template (contains `{text}`).
    pub prompt: PromptTemplate,
    /// How replies map to labels, if given.
    pub verbalizers: Option<Verbalizers>,
    /// Tags for the entry.
    pub tags: BTreeMap<String, String>,
    /// Where it was read (`FILE line N`).
    pub at: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Line {
    name: String,
    prompt: String,
    #[serde(default)]
    verbalizers: Vec<String>,
    #[serde(default)]
    tags: BTreeMap<String, String>,
}

/// Reads and checks a prompts file: names valid for new entries and unique in the file,
/// templates and verbalizers that parse, no unknown fields.
pub fn read_prompts_file(path: &Path) -> Result<Vec<PromptSpec>> {
    let f = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    let mut out = Vec::new();
    let mut seen: HashMap<String, usize> = HashMap::new();
    for (i, line) in BufReader::new(f).lines().enumerate() {
        let n = i + 1;
        let at = format!("{} line {n}", path.display());
        let line = line.map_err(|e| match e.kind() {
            std::io::ErrorKind::InvalidData => Error::invalid(&at, "not valid UTF-8"),
            _ => Error::io(path, e),
        })?;
        if line.trim().is_empty() {
            continue;
        }
        let l: Line = serde_json::from_str(&line).map_err(|e| {
            Error::invalid(
                &at,
                format!(
                    "{e}; a line is {{\"name\", \"prompt\", \"verbalizers\"?: [\"LABEL=w1|w2\"], \
                     \"tags\"?: {{}}}}"
                ),
            )
        })?;
        crate::model::validate_name_for_new_entry(&l.name, &at)?;
        if let Some(prev) = seen.insert(l.name.clone(), n) {
            return Err(Error::invalid(
                &at,
                format!(
                    "name {:?} is also on line {prev}: give each prompt its own",
                    l.name
                ),
            ));
        }
        let prompt =
            PromptTemplate::parse(&l.prompt).map_err(|e| Error::invalid(&at, e.to_string()))?;
        let verbalizers = if l.verbalizers.is_empty() {
            None
        } else {
            Some(
                Verbalizers::parse(&l.verbalizers)
                    .map_err(|e| Error::invalid(&at, e.to_string()))?,
            )
        };
        out.push(PromptSpec {
            name: l.name,
            prompt,
            verbalizers,
            tags: l.tags,
            at,
        });
    }
    if out.is_empty() {
        return Err(Error::invalid(
            path.display().to_string(),
            "no prompts in the file (one JSON object a line)",
        ));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_prompts_file_is_checked_whole_with_file_and_line() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("p.jsonl");
        let write = |s: &str| std::fs::write(&p, s).unwrap();
        write(
            "{\"name\": \"a\", \"prompt\": \"Review: {text} Sentiment:\", \"verbalizers\": [\"positive=good\", \"negative=bad\"], \"tags\": {\"llm\": \"x\"}}\n\n{\"name\": \"b\", \"prompt\": \"{text}\"}\n",
        );
        let got = read_prompts_file(&p).unwrap();
        assert_eq!(got.len(), 2);
        assert_eq!(got[0].tags["llm"], "x");
        assert!(got[0].verbalizers.is_some() && got[1].verbalizers.is_none());
        assert!(got[1].at.ends_with("line 3"));
        let err = |s: &str| {
            write(s);
            read_prompts_file(&p).unwrap_err().to_string()
        };
        let e = err("{\"name\": \"a\", \"prompt\": \"{text}\"}\n{\"name\": \"a\", \"prompt\": \"x {text}\"}\n");
        assert!(e.contains("line 2") && e.contains("also on line 1"), "{e}");
        let e = err("{\"name\": \"a\", \"prompt\": \"no placeholder\"}\n");
        assert!(e.contains("line 1"), "{e}");
        let e = err("{\"name\": \"a\", \"prompt\": \"{text}\", \"promt\": 1}\n");
        assert!(e.contains("line 1") && e.contains("promt"), "{e}");
        let e = err("{\"name\": \"a@2\", \"prompt\": \"{text}\"}\n");
        assert!(e.contains("line 1"), "{e}");
        let e = err("\n");
        assert!(e.contains("no prompts"), "{e}");
    }
}
