// quantizeRows, dequantizeRows and inspectModel: the addon's functions that need no engine (quant_wrap.cpp).
#pragma once
#include <napi.h>

#include "addon_data.h"

namespace tl_binding {

void init_quant_wrap(Napi::Env env, Napi::Object exports);

} // namespace tl_binding
