// YAML and JSON text <-> json values, bounded so hostile input cannot exhaust the stack or memory.
#pragma once

#include <string>
#include <vector>

#include "stratus/core/status.h"

namespace stratus {

inline constexpr int kMaxNestingDepth = 64;

// Parses JSON text. Rejects (kBadRequest, with line/column when known) malformed text and nesting deeper than
// `max_depth`.
StatusOr<json> ParseJson(const std::string& text, int max_depth = kMaxNestingDepth);

// Parses a multi-document YAML stream (`---` separated) into JSON values; empty documents are skipped.
// Plain scalars follow the YAML 1.2 core schema (123 -> integer, 1.5 -> number, true/false -> boolean,
// null/~ -> null); quoted scalars stay strings. Anchors/aliases are expanded. Errors (kBadRequest) carry the
// line and column and the document index. Nesting deeper than `max_depth` is rejected.
StatusOr<std::vector<json>> ParseYamlDocuments(const std::string& text, int max_depth = kMaxNestingDepth);

// Parses a body that is either JSON or YAML (a single document).
StatusOr<json> ParseJsonOrYaml(const std::string& text, int max_depth = kMaxNestingDepth);

// Renders a JSON value as block-style YAML (strings that would read back as another type are quoted;
// multi-line strings use literal blocks).
std::string ToYaml(const json& value);

}  // namespace stratus
