#pragma once
// Fills a Weights' roles from views found by name (expected_tensors' names). Internal.
#include <map>
#include <string>

#include "losa/runtime/weights.hpp"

namespace losa::runtime::detail {

/// w.config must be set; `views` holds every tensor of expected_tensors(w.config).
void assign_roles(Weights& w, const std::map<std::string, TensorView>& views);

}  // namespace losa::runtime::detail
