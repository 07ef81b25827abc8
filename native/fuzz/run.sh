#!/usr/bin/env bash
# Fuzzing the GGUF reader, the tokenizers and the GBNF grammar parser/matcher (gguf_fuzz.cpp, tokenizer_fuzz.cpp,
# grammar_fuzz.cpp: LLVMFuzzerTestOneInput targets).
#
#   native/fuzz/run.sh ci                      replay the seed corpora under ASan+LSan+UBSan with g++ (what CI runs,
#                                              through tests/native/sanitizers.test.ts); exit non-zero on any finding
#   native/fuzz/run.sh libfuzzer [T] [SECS]    fuzz target T (gguf | tokenizer | grammar | both = all three, default both) with libFuzzer
#                                              for SECS seconds each (default 300); needs clang (apt-get install clang)
#   native/fuzz/run.sh valgrind                the native tests and the corpora under valgrind memcheck (no sanitizers)
#
# Builds go to $TL_FUZZ_OUT (default /tmp/tuneloop-fuzz). libFuzzer grows its own corpus there (work-T/), starting
# from native/fuzz/corpus/T; a crash is written as crash-* next to it and the run stops: copy the file into
# native/fuzz/corpus/T/ (keep the crash- prefix: tools/make-fuzz-corpus.ts leaves those alone), fix native/src, and
# the CI replay keeps it fixed. The committed corpus stays small (< 500 KB); regenerate its seeds with
#   node --import tsx tools/make-fuzz-corpus.ts
# AFL++ works on the same targets: afl-clang-fast++ -fsanitize=fuzzer builds them with AFL's driver, then
# afl-fuzz -i native/fuzz/corpus/gguf -o OUT -- ./gguf_fuzz.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
SRC="$ROOT/native/src"
FUZZ="$ROOT/native/fuzz"
OUT="${TL_FUZZ_OUT:-/tmp/tuneloop-fuzz}"
Q="$SRC/quant"
# The reader and what the targets touch through it: the quant library's portable files (block geometry, validators,
# decoders, kernel dispatch) and the engine's weight layouts; its two ISA files are compiled apart (isa_objects).
ENGINE=("$SRC/gguf.cpp" "$SRC/tokenizer.cpp" "$SRC/pretokenizer.cpp" "$SRC/split_pattern.cpp" "$SRC/unicode.cpp"
  "$SRC/errors.cpp" "$SRC/tensor_convert.cpp" "$SRC/grammar.cpp" "$SRC/grammar_matcher.cpp" "$SRC/kernels/cpu/quantize.cpp"
  "$Q/formats.cpp" "$Q/dequantize.cpp" "$Q/quantize_weights.cpp" "$Q/quantize_acts.cpp" "$Q/dot_scalar.cpp"
  "$Q/dispatch.cpp" "$Q/matmul.cpp")
AVX512=(-mavx512f -mavx512bw -mavx512vl -mavx512dq -mavx512vnni -mavx512bf16 -mfma -mf16c -mavx2)
# isa_objects COMPILER PREFIX FLAGS...: the quant kernel sets as $OUT/PREFIX-qavx512.o and $OUT/PREFIX-qavx2.o.
isa_objects() {
  local cxx="$1" prefix="$2"
  shift 2
  "$cxx" -std=c++17 "$@" -I"$SRC" -c "$Q/dot_avx512.cpp" -o "$OUT/$prefix-qavx512.o" "${AVX512[@]}"
  "$cxx" -std=c++17 "$@" -I"$SRC" -c "$Q/dot_avx2.cpp" -o "$OUT/$prefix-qavx2.o" -mavx2 -mfma -mf16c
}
SAN=(-fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer)
# The tokenizer target loads the shipped model's vocabulary (it falls back to a synthetic one when it is absent).
export TL_FUZZ_MODEL="${TL_FUZZ_MODEL:-$ROOT/models/tuneloop-shakespeare.gguf}"
export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=1:halt_on_error=1}"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}"
mkdir -p "$OUT"

targets() {
  case "${1:-both}" in
    both | all) echo gguf tokenizer grammar ;;
    gguf | tokenizer | grammar) echo "$1" ;;
    *) echo "unknown target '$1' (gguf | tokenizer | grammar | both)" >&2; exit 2 ;;
  esac
}

case "${1:-ci}" in
  ci)
    isa_objects g++ san -O1 -g "${SAN[@]}"
    for t in gguf tokenizer grammar; do
      g++ -std=c++17 -O1 -g "${SAN[@]}" -I"$SRC" "$FUZZ/${t}_fuzz.cpp" "$FUZZ/driver.cpp" "${ENGINE[@]}" \
        "$OUT/san-qavx512.o" "$OUT/san-qavx2.o" -o "$OUT/${t}_replay" &
    done
    wait
    for t in gguf tokenizer grammar; do "$OUT/${t}_replay" "$FUZZ/corpus/$t"; done
    ;;
  libfuzzer)
    secs="${3:-300}"
    for t in $(targets "${2:-both}"); do
      isa_objects clang++ lf -O1 -g -fsanitize=fuzzer-no-link "${SAN[@]}"
      clang++ -std=c++17 -O1 -g -fsanitize=fuzzer "${SAN[@]}" -I"$SRC" "$FUZZ/${t}_fuzz.cpp" "${ENGINE[@]}" \
        "$OUT/lf-qavx512.o" "$OUT/lf-qavx2.o" -o "$OUT/${t}_libfuzzer"
      mkdir -p "$OUT/work-$t"
      # -max_len: room for the tiny models in the GGUF corpus; text inputs need far less. The limits keep a
      # plausible-looking huge allocation from being reported as an out-of-memory crash of the fuzzer itself.
      max_len=$([ "$t" = gguf ] && echo 65536 || echo 4096)
      "$OUT/${t}_libfuzzer" "$OUT/work-$t" "$FUZZ/corpus/$t" -max_total_time="$secs" -max_len="$max_len" -timeout=10 \
        -rss_limit_mb=2048 -malloc_limit_mb=1024 -use_value_profile=1 -print_final_stats=1 -artifact_prefix="$OUT/"
    done
    ;;
  valgrind)
    K="$SRC/kernels/cpu"
    g++ -std=c++17 -O2 -g -I"$SRC" -c "$K/matmul_avx512.cpp" -o "$OUT/avx512.o" -mavx512f -mavx512bw -mavx512vl -mavx512dq -mavx512vnni -mavx512bf16 -mfma -mf16c -mavx2
    g++ -std=c++17 -O2 -g -I"$SRC" -c "$K/matmul_avx2.cpp" -o "$OUT/avx2.o" -mavx2 -mfma -mf16c
    g++ -std=c++17 -O2 -g -I"$SRC" -c "$K/attention_avx512.cpp" -o "$OUT/att-avx512.o" "${AVX512[@]}"
    g++ -std=c++17 -O2 -g -I"$SRC" -c "$K/attention_avx2.cpp" -o "$OUT/att-avx2.o" -mavx2 -mfma -mf16c
    isa_objects g++ vg -O2 -g
    QOBJ=("$OUT/vg-qavx512.o" "$OUT/vg-qavx2.o")
    g++ -std=c++17 -O2 -g -I"$SRC" "$ROOT/native/tests/kernels_test.cpp" "$K/matmul_scalar.cpp" "$K/attention_scalar.cpp" "$K/dispatch.cpp" "${ENGINE[@]}" "$OUT/avx512.o" "$OUT/avx2.o" "$OUT/att-avx512.o" "$OUT/att-avx2.o" "${QOBJ[@]}" -o "$OUT/kernels_test" -lpthread
    g++ -std=c++17 -O2 -g -I"$SRC" "$ROOT/native/tests/tokenizer_sampler_test.cpp" "${ENGINE[@]}" "${QOBJ[@]}" "$SRC/sampler.cpp" -o "$OUT/tokenizer_sampler_test"
    for t in gguf tokenizer grammar; do g++ -std=c++17 -O2 -g -I"$SRC" "$FUZZ/${t}_fuzz.cpp" "$FUZZ/driver.cpp" "${ENGINE[@]}" "${QOBJ[@]}" -o "$OUT/${t}_plain"; done
    vg=(valgrind --tool=memcheck --leak-check=full --errors-for-leak-kinds=definite,indirect,possible --error-exitcode=99 --track-origins=yes)
    stories="$ROOT/../shared/models/stories260K-f32.gguf"
    # valgrind does not emulate AVX-512: the kernel dispatch sees AVX2 at most under it.
    TL_TEST_NO_TIMING=1 "${vg[@]}" "$OUT/kernels_test" > /dev/null
    TL_TEST_NO_TIMING=1 "${vg[@]}" "$OUT/tokenizer_sampler_test" $([ -f "$stories" ] && echo "$stories") > /dev/null
    for t in gguf tokenizer grammar; do "${vg[@]}" "$OUT/${t}_plain" "$FUZZ/corpus/$t"; done
    ;;
  *)
    sed -n '2,10p' "$0" >&2
    exit 2
    ;;
esac
