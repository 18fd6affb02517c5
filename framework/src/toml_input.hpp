// What config_file.cpp hands to toml++ 3.3 (Debian 12), which reaches
// __builtin_unreachable() (undefined behaviour) when it asks whether some
// non-ASCII characters are whitespace: U+00A1..U+0499 and U+FB26..U+FEFE,
// the buckets its generated whitespace table misses (found by tests/fuzz).
// It asks of every character outside strings and comments it reads, bare
// values up to their end whatever they hold, quotes included, and in a
// multi-line string of the first character after a backslash's whitespace.
#pragma once

#include <string>

namespace prefork {

// The text of a --config file as toml++ can read it without undefined
// behaviour, or flags::UsageError "PATH:LINE: ..." for what it cannot:
// - a control character other than tab and a line's end (TOML allows none);
// - a non-ASCII character outside strings and comments (TOML allows none:
//   bare keys, numbers, booleans and dates are ASCII);
// - a backslash before a non-ASCII character (TOML's escapes are ASCII);
// - a basic string's bytes that are not UTF-8.
// Each non-ASCII character of a basic ("...", """...""") string is handed
// to toml++ as its \u or \U escape: the same string, toml++'s columns on
// that line moved. Literal strings and comments keep theirs as they are.
std::string readable_by_toml(const std::string& path, const std::string& text);

}  // namespace prefork
