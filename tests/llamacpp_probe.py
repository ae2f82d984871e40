"""Run by tests in a child process: load a GGUF in llama.cpp (llama-cpp-python) and report,
as one JSON line, its metadata, how it tokenizes texts, and its greedy continuations of token
ids. A crash in llama.cpp then fails the test with its exit status instead of killing pytest.

usage: python tests/llamacpp_probe.py MODEL.gguf REQUEST.json [--repack]
REQUEST: {"texts": [str, ...], "prompts": [[id, ...], ...], "new_tokens": int,
          "conversations": [[{"role": ..., "content": ...}, ...], ...]}
The conversations are rendered with the chat template embedded in the file, by
llama-cpp-python's own Jinja2 chat formatter (what its chat completion uses).
"""
from __future__ import annotations

import json
import sys


def main(path: str, request_path: str) -> None:
    from llama_cpp import Llama

    from adapters_sft.export.llamacpp import without_repacking

    if "--repack" not in sys.argv:
        without_repacking()  # as the exporter measures: see adapters_sft/export/llamacpp.py
    request = json.loads(open(request_path, encoding="utf-8").read())
    llm = Llama(model_path=path, n_ctx=1024, n_threads=2, n_batch=512, verbose=False, seed=0)
    eos = llm.token_eos()
    continuations = []
    for prompt in request["prompts"]:
        llm.reset()
        out: list[int] = []
        for token in llm.generate(prompt, top_k=1, top_p=1.0, min_p=0.0, temp=0.0, repeat_penalty=1.0):
            out.append(int(token))
            if token == eos or len(out) >= request["new_tokens"]:
                break
        continuations.append(out)
    tokens = [llm.tokenize(t.encode("utf-8"), add_bos=False, special=True) for t in request["texts"]]
    rendered = []
    if request.get("conversations"):
        from llama_cpp.llama_chat_format import Jinja2ChatFormatter

        formatter = Jinja2ChatFormatter(llm.metadata["tokenizer.chat_template"],
                                        eos_token=llm.detokenize([eos], special=True).decode(),
                                        bos_token=llm.detokenize([llm.token_bos()], special=True).decode())
        rendered = [formatter(messages=c).prompt for c in request["conversations"]]
    print(json.dumps({"metadata": dict(llm.metadata), "tokens": tokens, "continuations": continuations,
                      "eos": eos, "rendered": rendered}))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
