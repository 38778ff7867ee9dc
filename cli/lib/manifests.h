// Reading the objects a user passes with `-f`: files, directories (recursively with -R) and stdin ("-"),
// each holding one or more YAML or JSON documents; `kind: List` documents are expanded into their items.
#pragma once

#include <istream>
#include <string>
#include <utility>
#include <vector>

#include "stratus/core/status.h"

namespace stratus::cli {

struct Manifest {
  std::string source;  // file path, or "-" for stdin
  json object;
};

struct LoadedManifests {
  std::vector<Manifest> objects;
  // Files that could not be read or parsed, with why; the other files' objects are still loaded.
  std::vector<std::pair<std::string, Status>> errors;
};

// Loads every object from `paths` in order. Directories contribute their *.yaml, *.yml and *.json files in
// name order, and those of subdirectories too when `recursive`. "-" reads `in`.
LoadedManifests LoadManifests(const std::vector<std::string>& paths, bool recursive, std::istream& in);

// Parses one stream of YAML/JSON documents from `source` (expanding lists); appends to `out`.
Status ParseManifests(const std::string& text, const std::string& source, std::vector<Manifest>& out);

}  // namespace stratus::cli
