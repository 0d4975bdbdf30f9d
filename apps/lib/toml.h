// A small reader and writer for the TOML subset okd's config files use: `key = value` lines with
// strings, integers, floats, booleans and flat arrays, `# comments`, and [table] headers whose
// keys become "table.key" (so [dml] peers = 3 is the flag --dml.peers 3).
#pragma once
#include <map>
#include <string>
#include <vector>

namespace okd::apps {

// Values are kept as the text a command-line flag would take: strings unquoted, arrays joined
// with commas ("150,225"), booleans "true"/"false".
using ConfigMap = std::map<std::string, std::string>;

// Throws okd::Error naming the file and line on a syntax error.
ConfigMap parse_toml(const std::string& text, const std::string& source_name = "<config>");
ConfigMap read_toml_file(const std::string& path);
// Writes keys sorted, "a.b" keys grouped under [a] tables; values quoted unless numeric/boolean.
std::string to_toml(const ConfigMap& values);

}  // namespace okd::apps
