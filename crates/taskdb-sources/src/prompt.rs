//! LLM prompts (`--prompt`) and verbalizers (`--verbalizer LABEL=word1|word2`).

use std::collections::BTreeMap;

use crate::error::{Error, Result};

#[derive(Debug, Clone, PartialEq, Eq)]
enum Part {
    Lit(String),
    Text,
    TextPair,
}

/// A prompt template: literal text with `{text}` and optionally `{text_pair}`
/// placeholders; `{{` and `}}` stand for literal braces. Any other `{...}` is an error.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PromptTemplate {
    source: String,
    parts: Vec<Part>,
}

impl PromptTemplate {
    /// Parses a template. Errors: no `{text}`, an unknown placeholder, an unclosed `{`,
    /// or a lone `}`.
    pub fn parse(s: &str) -> Result<PromptTemplate> {
        let err = |msg: String| Error::Template { msg };
        let mut parts = Vec::new();
        let mut lit = String::new();
        let mut chars = s.char_indices().peekable();
        while let Some((i, c)) = chars.next() {
            match c {
                '{' if chars.peek().map(|x| x.1) == Some('{') => {
                    chars.next();
                    lit.push('{');
                }
                '{' => {
                    let rest = &s[i + 1..];
                    let Some(end) = rest.find('}') else {
                        return Err(err(format!(
                            "unclosed '{{' at byte {i}; write {{{{ for a literal brace"
                        )));
                    };
                    let name = &rest[..end];
                    let part = match name {
                        "text" => Part::Text,
                        "text_pair" => Part::TextPair,
                        _ => {
                            return Err(err(format!(
                                "unknown placeholder {{{name}}} at byte {i}; the placeholders are {{text}} and {{text_pair}}, and {{{{ / }}}} write literal braces"
                            )))
                        }
                    };
                    if !lit.is_empty() {
                        parts.push(Part::Lit(std::mem::take(&mut lit)));
                    }
                    parts.push(part);
                    for _ in 0..name.chars().count() + 1 {
                        chars.next();
                    }
                }
                '}' if chars.peek().map(|x| x.1) == Some('}') => {
                    chars.next();
                    lit.push('}');
                }
                '}' => {
                    return Err(err(format!(
                        "lone '}}' at byte {i}; write }}}} for a literal brace"
                    )))
                }
                c => lit.push(c),
            }
        }
        if !lit.is_empty() {
            parts.push(Part::Lit(lit));
        }
        if !parts.contains(&Part::Text) {
            return Err(err(
                "the template has no {text} placeholder, so every input would get the same prompt"
                    .into(),
            ));
        }
        Ok(PromptTemplate {
            source: s.to_string(),
            parts,
        })
    }

    /// The template as given.
    pub fn as_str(&self) -> &str {
        &self.source
    }

    /// Whether the template uses `{text_pair}`.
    pub fn uses_pair(&self) -> bool {
        self.parts.contains(&Part::TextPair)
    }

    /// Fills in the template (`{text_pair}` becomes "" when `pair` is `None`).
    pub fn render(&self, text: &str, pair: Option<&str>) -> String {
        let mut out = String::with_capacity(self.source.len() + text.len());
        for p in &self.parts {
            match p {
                Part::Lit(s) => out.push_str(s),
                Part::Text => out.push_str(text),
                Part::TextPair => out.push_str(pair.unwrap_or("")),
            }
        }
        out
    }
}

/// Maps free-text replies (or per-word scores) of an LLM to labels.
///
/// Matching is case-insensitive on trimmed text:
/// 1. the reply *starts* with a verbalizer word (at a word boundary; leading quotes,
///    brackets and punctuation skipped): the longest such word wins;
/// 2. else every verbalizer word that occurs as a whole word in the reply is found: if
///    they all belong to one label, that label; if they belong to several, the reply is
///    ambiguous and counts as unmatched;
/// 3. else unmatched.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verbalizers {
    /// (label, lowercase words), labels in the order first given.
    entries: Vec<(String, Vec<String>)>,
}

impl Verbalizers {
    /// Parses `LABEL=word1|word2` specs (repeatable; a label given twice merges its
    /// words). Errors: no '=', empty label or word, a word given for two labels, fewer
    /// than two labels.
    pub fn parse<S: AsRef<str>>(specs: &[S]) -> Result<Verbalizers> {
        let mut entries: Vec<(String, Vec<String>)> = Vec::new();
        let mut owner: BTreeMap<String, String> = BTreeMap::new();
        for spec in specs {
            let spec = spec.as_ref();
            let err = |msg: &str| Error::Verbalizer {
                spec: spec.to_string(),
                msg: msg.to_string(),
            };
            let Some((label, words)) = spec.split_once('=') else {
                return Err(err("expected LABEL=word1|word2"));
            };
            let label = label.trim();
            if label.is_empty() {
                return Err(err("empty label before '='"));
            }
            let idx = match entries.iter().position(|e| e.0 == label) {
                Some(i) => i,
                None => {
                    entries.push((label.to_string(), Vec::new()));
                    entries.len() - 1
                }
            };
            for w in words.split('|') {
                let w = w
                    .split_whitespace()
                    .collect::<Vec<_>>()
                    .join(" ")
                    .to_lowercase();
                if w.is_empty() {
                    return Err(err("empty word; words are separated by '|'"));
                }
                if let Some(o) = owner.get(&w) {
                    if o != label {
                        return Err(err(&format!(
                            "the word {w:?} is also a verbalizer of label {o:?}; each word may map to one label"
                        )));
                    }
                    continue;
                }
                owner.insert(w.clone(), label.to_string());
                entries[idx].1.push(w);
            }
        }
        if entries.len() < 2 {
            return Err(Error::Verbalizer {
                spec: specs
                    .iter()
                    .map(|s| s.as_ref())
                    .collect::<Vec<_>>()
                    .join(" "),
                msg: "give verbalizers for at least two labels".into(),
            });
        }
        Ok(Verbalizers { entries })
    }

    /// The labels, sorted.
    pub fn labels(&self) -> Vec<String> {
        let mut v: Vec<String> = self.entries.iter().map(|e| e.0.clone()).collect();
        v.sort();
        v
    }

    /// The label for a free-text reply, or `None` (unmatched or ambiguous).
    pub fn map_reply(&self, reply: &str) -> Option<&str> {
        let low = reply.to_lowercase();
        let norm = low.split_whitespace().collect::<Vec<_>>().join(" ");
        let start = norm.trim_start_matches(|c: char| !c.is_alphanumeric());
        // 1. longest verbalizer word at the start.
        let mut best: Option<(&str, usize)> = None;
        for (label, words) in &self.entries {
            for w in words {
                if start.starts_with(w.as_str())
                    && boundary_after(start, w.len())
                    && best.is_none_or(|b| w.len() > b.1)
                {
                    best = Some((label.as_str(), w.len()));
                }
            }
        }
        if let Some((l, _)) = best {
            return Some(l);
        }
        // 2. whole-word containment, unambiguous.
        let mut found: Option<&str> = None;
        for (label, words) in &self.entries {
            if words.iter().any(|w| contains_word(&norm, w)) {
                if found.is_some() {
                    return None;
                }
                found = Some(label.as_str());
            }
        }
        found
    }

    /// Sums per-word scores into per-label scores (every label present, 0 when none of
    /// its words was scored). Words are matched case-insensitively after trimming;
    /// unknown words are ignored. `None` when no word matches a verbalizer.
    pub fn map_scores(&self, scores: &BTreeMap<String, f64>) -> Option<BTreeMap<String, f64>> {
        let mut out: BTreeMap<String, f64> =
            self.entries.iter().map(|e| (e.0.clone(), 0.0)).collect();
        let mut any = false;
        for (word, &s) in scores {
            let w = word
                .split_whitespace()
                .collect::<Vec<_>>()
                .join(" ")
                .to_lowercase();
            for (label, words) in &self.entries {
                if words.contains(&w) {
                    *out.get_mut(label).expect("label present") += s;
                    any = true;
                }
            }
        }
        any.then_some(out)
    }
}

fn boundary_after(s: &str, i: usize) -> bool {
    s[i..].chars().next().is_none_or(|c| !c.is_alphanumeric())
}

fn contains_word(hay: &str, w: &str) -> bool {
    let mut from = 0;
    while let Some(p) = hay[from..].find(w) {
        let at = from + p;
        let before_ok = hay[..at]
            .chars()
            .next_back()
            .is_none_or(|c| !c.is_alphanumeric());
        if before_ok && boundary_after(hay, at + w.len()) {
            return true;
        }
        from = at + hay[at..].chars().next().map_or(1, |c| c.len_utf8());
        if from >= hay.len() {
            break;
        }
    }
    false
}
