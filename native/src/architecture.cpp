// The architecture registry (architecture.h): general.architecture -> builder.
#include "architecture.h"

#include <algorithm>
#include <map>

#include "errors.h"

namespace tl {

namespace {

// Function-local so that registrations from other files' static initializers find it constructed.
std::map<std::string, const Architecture *> & registry() {
    static std::map<std::string, const Architecture *> r;
    return r;
}

} // namespace

bool register_architecture(const Architecture * arch) {
    registry()[arch->name()] = arch;
    return true;
}

const Architecture * find_architecture(const std::string & name) {
    auto it = registry().find(name);
    return it == registry().end() ? nullptr : it->second;
}

std::vector<std::string> architecture_names() {
    std::vector<std::string> out;
    for (const auto & [name, _] : registry()) out.push_back(name);
    return out; // std::map: sorted
}

const Architecture & architecture_of(const GgufFile & f) {
    const std::string arch = f.get_string("general.architecture", "");
    if (arch.empty())
        fail(ErrorCode::MODEL_CORRUPT, "model '" + f.path() + "': metadata 'general.architecture' is missing");
    if (const Architecture * a = find_architecture(arch)) return *a;
    std::string supported;
    for (const std::string & n : architecture_names()) supported += (supported.empty() ? "" : ", ") + n;
    fail(ErrorCode::UNSUPPORTED_ARCHITECTURE,
         "model '" + f.path() + "' has architecture '" + arch + "'; supported: " + supported);
}

} // namespace tl
