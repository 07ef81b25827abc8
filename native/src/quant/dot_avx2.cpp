#include "quant/kernels.h"
namespace tl { namespace quant { namespace detail {
const Kernels & avx2_kernels( ) { static Kernels k{"avx2", {}}; return k; }
}}}
