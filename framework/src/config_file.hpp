// A --config file: TOML, one top-level key per flag (docs: README,
// "Configuration file"). This reads the file and turns each value into the
// words the flag would get on the command line; which keys exist and what
// their values mean is the flag table's business (command_line.cpp).
//
// toml++ is used in config_file.cpp alone, header-only, so nothing of it
// reaches prefork's headers or the installed package's link interface.
#pragma once

#include <string>
#include <vector>

namespace prefork {

// One value as a flag's word: a string as it is, a number in decimal
// (2.5, 4), a boolean as "true"/"false" with `boolean` set.
struct ConfigValue {
  std::string text;
  bool boolean = false;
  unsigned line = 0;
};

// One top-level key; `array`: given as an array (its elements in `values`).
struct ConfigEntry {
  std::string key;
  std::vector<ConfigValue> values;
  bool array = false;
  unsigned line = 0;
};

// The file's keys, in the order they appear in it. Throws
// flags::UsageError: "PATH: open failed: ..." when it cannot be read,
// "PATH:LINE:COLUMN: <what>" for a TOML syntax error, "PATH:LINE: ..." for
// a table or a value that no flag could take (a date, an array of arrays).
std::vector<ConfigEntry> read_config_file(const std::string& path);

// "PATH:LINE".
std::string config_location(const std::string& path, unsigned line);

}  // namespace prefork
