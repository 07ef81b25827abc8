{
  # The engine core (native/src) is plain C++17, built with -Wall -Wextra -Werror. Kernels that use wide vector
  # instructions live in their own static libraries so that only they are compiled with -mavx512*/-mavx2; the rest of
  # the addon stays portable and picks a kernel set at run time (see native/src/kernels/cpu/dispatch.cpp).
  "target_defaults": {
    "cflags_cc": ["-std=c++17", "-O3", "-fexceptions", "-Wall", "-Wextra", "-Wno-unused-parameter", "-Werror"],
    "cflags_cc!": ["-fno-exceptions", "-std=gnu++17"],
    "cflags": ["-O3"],
    "defines": ["NAPI_VERSION=8"]
  },
  "targets": [
    {
      "target_name": "tl_kernels_avx512",
      "type": "static_library",
      "sources": ["native/src/kernels/cpu/matmul_avx512.cpp", "native/src/kernels/cpu/attention_avx512.cpp"],
      "include_dirs": ["native/src"],
      "cflags_cc": ["-mavx512f", "-mavx512bw", "-mavx512vl", "-mavx512dq", "-mavx512vnni", "-mavx512bf16", "-mfma", "-mf16c", "-mavx2"]
    },
    {
      "target_name": "tl_kernels_avx2",
      "type": "static_library",
      "sources": ["native/src/kernels/cpu/matmul_avx2.cpp", "native/src/kernels/cpu/attention_avx2.cpp"],
      "include_dirs": ["native/src"],
      "cflags_cc": ["-mavx2", "-mfma", "-mf16c"]
    },
    {
      # The GGUF block-format library's kernel sets (native/src/quant): the same ISA split as the kernels above.
      "target_name": "tl_quant_avx512",
      "type": "static_library",
      "sources": ["native/src/quant/dot_avx512.cpp"],
      "include_dirs": ["native/src"],
      "cflags_cc": ["-mavx512f", "-mavx512bw", "-mavx512vl", "-mavx512dq", "-mavx512vnni", "-mavx512bf16", "-mfma", "-mf16c", "-mavx2"]
    },
    {
      "target_name": "tl_quant_avx2",
      "type": "static_library",
      "sources": ["native/src/quant/dot_avx2.cpp"],
      "include_dirs": ["native/src"],
      "cflags_cc": ["-mavx2", "-mfma", "-mf16c"]
    },
    {
      "target_name": "tuneloop_native",
      "dependencies": ["tl_kernels_avx512", "tl_kernels_avx2", "tl_quant_avx512", "tl_quant_avx2"],
      "sources": [
        "native/binding/addon.cpp",
        "native/binding/engine_wrap.cpp",
        "native/binding/quant_wrap.cpp",
        "native/binding/tokenizer_wrap.cpp",
        "native/src/errors.cpp",
        "native/src/gguf.cpp",
        "native/src/tensor_convert.cpp",
        "native/src/tokenizer.cpp",
        "native/src/pretokenizer.cpp",
        "native/src/split_pattern.cpp",
        "native/src/unicode.cpp",
        "native/src/sampler.cpp",
        "native/src/threadpool.cpp",
        "native/src/model_loader.cpp",
        "native/src/model.cpp",
        "native/src/layers.cpp",
        "native/src/mla.cpp",
        "native/src/moe.cpp",
        "native/src/architecture.cpp",
        "<!@(node -p \"require('fs').readdirSync('native/src/models').filter(f => f.endsWith('.cpp')).map(f => 'native/src/models/' + f).join(' ')\")",
        "native/src/tp.cpp",
        "native/src/engine.cpp",
        "native/src/engine_output.cpp",
        "native/src/engine_stats.cpp",
        "native/src/grammar.cpp",
        "native/src/grammar_matcher.cpp",
        "native/src/grammar_sampling.cpp",
        "native/src/block_pool.cpp",
        "native/src/kv_cache.cpp",
        "native/src/scheduler.cpp",
        "native/src/stats.cpp",
        "native/src/membench.cpp",
        "native/src/kernels/cpu/quantize.cpp",
        "native/src/kernels/cpu/matmul_scalar.cpp",
        "native/src/kernels/cpu/attention_scalar.cpp",
        "native/src/kernels/cpu/dispatch.cpp",
        "native/src/quant/formats.cpp",
        "native/src/quant/dequantize.cpp",
        "native/src/quant/quantize_weights.cpp",
        "native/src/quant/quantize_acts.cpp",
        "native/src/quant/dot_scalar.cpp",
        "native/src/quant/dispatch.cpp",
        "native/src/quant/matmul.cpp"
      ],
      "include_dirs": ["native/src"],
      # Warnings are errors for our sources (target_defaults); headers we do not own are system headers, so a new
      # compiler's or node-addon-api's warnings in them cannot break the build.
      "cflags_cc": [
        "-isystem", "<!(node -p \"require('path').resolve(require('node-addon-api').include_dir)\")",
        "-isystem", "<(node_root_dir)/include/node"
      ],
      "defines": ["NAPI_CPP_EXCEPTIONS"],
      "libraries": ["-lpthread"]
    }
  ]
}
