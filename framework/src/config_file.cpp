// toml++ header-only in this one file (see config_file.hpp): no formatters,
// exceptions on (toml::parse throws toml::parse_error).
#define TOML_HEADER_ONLY 1
#define TOML_ENABLE_FORMATTERS 0
#include <toml++/toml.h>

#include <prefork/error.hpp>
#include <prefork/flag_parser.hpp>

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <charconv>
#include <cstdio>
#include <string_view>
#include <tuple>
#include <utility>
#include <vector>

#include "config_file.hpp"

namespace prefork {

namespace {

using flags::UsageError;

std::string read_whole(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) throw UsageError(SystemError("open", errno, path).what());
  std::string text;
  char buffer[8192];
  for (;;) {
    const ssize_t n = ::read(fd, buffer, sizeof buffer);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      const int error = errno;
      ::close(fd);
      throw UsageError(SystemError("read", error, path).what());
    }
    if (n == 0) break;
    text.append(buffer, static_cast<std::size_t>(n));
  }
  ::close(fd);
  return text;
}

unsigned line_of(const toml::node& node) { return node.source().begin.line; }

// A scalar as the word a flag would get; throws for what no flag takes.
ConfigValue word(const std::string& path, const std::string& key, const toml::node& node) {
  ConfigValue value;
  value.line = line_of(node);
  if (const auto* text = node.as_string()) {
    value.text = text->get();
  } else if (const auto* integer = node.as_integer()) {
    value.text = std::to_string(integer->get());
  } else if (const auto* real = node.as_floating_point()) {
    char digits[64];
    auto [end, error] = std::to_chars(digits, digits + sizeof digits, real->get());
    value.text.assign(digits, error == std::errc() ? end : digits);
  } else if (const auto* boolean = node.as_boolean()) {
    value.text = boolean->get() ? "true" : "false";
    value.boolean = true;
  } else {
    std::string message = config_location(path, value.line);
    message += ": ";
    message += key;
    message += node.is_array()   ? " wants one value or an array of values, not an array of arrays"
               : node.is_table() ? " wants a value, not a table"
                                 : " wants a string, a number or a boolean, not a date or a time";
    throw UsageError(message);
  }
  return value;
}

// A listener as a table (`[[framed]]` with `listen = "HOST:PORT"` and
// `idle-timeout = 5`...): the word its flag takes, "HOST:PORT,idle-timeout=5".
// Which parameters exist is the flag's business.
ConfigValue listener_word(const std::string& path, const std::string& key,
                          const toml::table& table) {
  ConfigValue value;
  value.line = line_of(table);
  const toml::node* listen = table.get("listen");
  if (listen == nullptr) {
    std::string message = config_location(path, value.line);
    message += ": a table in ";
    message += key;
    message += " wants listen = \"HOST:PORT\"";
    throw UsageError(message);
  }
  value.text = word(path, key + ".listen", *listen).text;
  for (auto&& [name, node] : table) {
    if (name.str() == "listen") continue;
    value.text += ',';
    value.text += name.str();
    value.text += '=';
    value.text += word(path, key + "." + std::string(name.str()), node).text;
  }
  return value;
}

}  // namespace

std::string config_location(const std::string& path, unsigned line) {
  std::string location = path;
  location += ':';
  location += std::to_string(line);
  return location;
}

namespace {

// The code point of the UTF-8 sequence at text[i], and its length; 0 for
// one that is not valid UTF-8 (overlong, a surrogate, beyond U+10FFFF).
std::pair<char32_t, std::size_t> code_point_at(std::string_view text, std::size_t i) {
  const auto byte = [&](std::size_t k) { return static_cast<unsigned char>(text[i + k]); };
  const unsigned lead = byte(0);
  const std::size_t length = lead >= 0xF0 ? 4 : lead >= 0xE0 ? 3 : lead >= 0xC0 ? 2 : 0;
  if (length == 0 || lead >= 0xF8 || i + length > text.size()) return {0, 0};
  char32_t point = lead & (0x7F >> length);
  for (std::size_t k = 1; k < length; ++k) {
    if ((byte(k) & 0xC0) != 0x80) return {0, 0};
    point = point << 6 | (byte(k) & 0x3F);
  }
  constexpr char32_t least[] = {0, 0, 0x80, 0x800, 0x10000};
  if (point < least[length] || point > 0x10FFFF || (point >= 0xD800 && point <= 0xDFFF))
    return {0, 0};
  return {point, length};
}

// toml++ 3.3 (Debian 12) reaches __builtin_unreachable() (undefined
// behaviour) when it asks whether some non-ASCII characters are whitespace
// (U+00A1..U+0499, say: its whitespace table misses buckets; found by
// tests/fuzz). It asks of every character outside strings and comments, and
// in a multi-line string of the first one after a backslash's whitespace.
// TOML allows no non-ASCII character outside strings and comments (bare
// keys, numbers, booleans and dates are ASCII), so such a character is
// refused, with its line, before toml++ reads the file. After a line-ending
// backslash, where it is valid TOML, it is handed to toml++ as the \u or \U
// escape of itself (the same string; toml++'s columns on that line move).
// Strings and comments may hold any UTF-8.
std::string readable_by_toml(const std::string& path, const std::string& text) {
  std::vector<std::pair<std::size_t, std::size_t>> escaped;  // offset, length
  enum class In { code, comment, basic, literal, multi_basic, multi_literal } in = In::code;
  unsigned line = 1;
  bool value = false;  // after '=': where toml++ scans bare values
  unsigned braces = 0;
  constexpr auto npos = std::string_view::npos;
  const auto at = [&](std::size_t i, std::string_view what) {
    return text.compare(i, what.size(), what) == 0;
  };
  const auto non_ascii = [&] {
    std::string message = config_location(path, line);
    message += ": a non-ASCII character outside a string or a comment";
    throw UsageError(message);
  };
  for (std::size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    // TOML allows no control character but tab and a line's end, anywhere;
    // refusing them here keeps this scan and toml++'s in step.
    const auto byte = static_cast<unsigned char>(c);
    if ((byte < 0x20 && c != '\t' && c != '\n' && !(c == '\r' && at(i, "\r\n"))) || byte == 0x7F) {
      char what[48];
      std::snprintf(what, sizeof what, ": a control character (0x%02X)", byte);
      std::string message = config_location(path, line);
      message += what;
      throw UsageError(message);
    }
    if (c == '\n') {
      ++line;
      if (in == In::comment || in == In::basic || in == In::literal) in = In::code;
      if (in == In::code && braces == 0) value = false;
      continue;
    }
    switch (in) {
      case In::code:
        if (byte >= 0x80) non_ascii();
        // A value that is not a string (a number, a date, a boolean) is
        // scanned by toml++ up to the next space, comma, bracket or comment
        // whatever it holds, quotes included: all of it must be ASCII.
        if (value && (std::isalnum(byte) || std::string_view("_+-:.").find(c) != npos)) {
          std::size_t end = i;
          while (end < text.size() && std::string_view(" \t\r\n,]}#").find(text[end]) == npos) {
            if (static_cast<unsigned char>(text[end]) >= 0x80) non_ascii();
            ++end;
          }
          i = end - 1;
          break;
        }
        if (c == '=') value = true;
        if (c == '{') value = false, ++braces;
        if (c == '}' && braces > 0) --braces;
        if (c == ',' && braces > 0) value = false;
        if (c == '#')
          in = In::comment;
        else if (at(i, "\"\"\""))
          in = In::multi_basic, i += 2;
        else if (at(i, "\'\'\'"))
          in = In::multi_literal, i += 2;
        else if (c == '"')
          in = In::basic;
        else if (c == '\'')
          in = In::literal;
        break;
      case In::comment:
        break;
      case In::basic:
      case In::multi_basic:
        // An escape (TOML's are ASCII; toml++ asks whether a non-ASCII
        // one is a line-ending backslash's whitespace).
        if (c == '\\' && in == In::multi_basic && i + 1 < text.size() &&
            std::string_view(" \t\r\n").find(text[i + 1]) != npos) {
          // A line-ending backslash (or what toml++ takes for one until it
          // finds no line break): it skips the whitespace after it, asking
          // of the first other character whether it is whitespace.
          std::size_t next = text.find_first_not_of(" \t", i + 1);
          if (next != npos && (text[next] == '\n' || text[next] == '\r'))
            next = text.find_first_not_of(" \t\r\n", next);
          next = std::min(next, text.size());
          for (std::size_t k = i; k < next; ++k) line += text[k] == '\n';
          if (next < text.size() && static_cast<unsigned char>(text[next]) >= 0x80) {
            const std::size_t length = code_point_at(text, next).second;
            if (length == 0) {
              std::string message = config_location(path, line);
              message += ": not UTF-8";
              throw UsageError(message);
            }
            escaped.emplace_back(next, length);
            next += length;
          }
          i = next - 1;
          break;
        }
        if (c == '\\' && i + 1 < text.size() && static_cast<unsigned char>(text[i + 1]) >= 0x80) {
          std::string message = config_location(path, line);
          message += ": a backslash before a non-ASCII character (TOML's escapes are ASCII)";
          throw UsageError(message);
        } else if (c == '\\' && i + 1 < text.size() && text[i + 1] != '\n')
          ++i;
        else if (in == In::multi_basic && at(i, "\"\"\""))
          in = In::code, i += 2;
        else if (in == In::basic && c == '"')
          in = In::code;
        break;
      case In::literal:
        if (c == '\'') in = In::code;
        break;
      case In::multi_literal:
        if (at(i, "\'\'\'")) in = In::code, i += 2;
        break;
    }
  }
  if (escaped.empty()) return text;
  std::string readable;
  std::size_t from = 0;
  for (const auto& [offset, length] : escaped) {
    readable.append(text, from, offset - from);
    char escape[16];
    const char32_t point = code_point_at(text, offset).first;
    std::snprintf(escape, sizeof escape, point > 0xFFFF ? "\\U%08X" : "\\u%04X",
                  static_cast<unsigned>(point));
    readable += escape;
    from = offset + length;
  }
  readable.append(text, from);
  return readable;
}

}  // namespace

std::vector<ConfigEntry> read_config_file(const std::string& path) {
  const std::string text = read_whole(path);
  toml::table table;
  try {
    table = toml::parse(readable_by_toml(path, text), path);
  } catch (const toml::parse_error& e) {
    std::string message = config_location(path, e.source().begin.line);
    message += ':';
    message += std::to_string(e.source().begin.column);
    message += ": ";
    message += e.description();
    throw UsageError(message);
  }

  std::vector<std::tuple<unsigned, unsigned, ConfigEntry>> entries;
  for (auto&& [name, node] : table) {
    ConfigEntry entry;
    entry.key = name.str();
    entry.line = name.source().begin.line;
    if (node.is_table()) {
      std::string message = config_location(path, entry.line);
      message += ": unknown key '";
      message += entry.key;
      message += "': a table; every key is at the top level, as the flags are";
      throw UsageError(message);
    }
    if (const toml::array* array = node.as_array()) {
      entry.array = true;
      for (const toml::node& element : *array) {
        if (const toml::table* listener = element.as_table()) {
          entry.values.push_back(listener_word(path, entry.key, *listener));
          continue;
        }
        if (element.is_array()) {
          std::string message = config_location(path, line_of(element));
          message += ": ";
          message += entry.key;
          message += " wants plain values in its array, not arrays";
          throw UsageError(message);
        }
        entry.values.push_back(word(path, entry.key, element));
      }
    } else {
      entry.values.push_back(word(path, entry.key, node));
    }
    entries.emplace_back(entry.line, name.source().begin.column, std::move(entry));
  }
  // toml::table is ordered by key; the file's order is the order given.
  std::sort(entries.begin(), entries.end(), [](const auto& a, const auto& b) {
    return std::tie(std::get<0>(a), std::get<1>(a)) < std::tie(std::get<0>(b), std::get<1>(b));
  });
  std::vector<ConfigEntry> ordered;
  for (auto& [line, column, entry] : entries) ordered.push_back(std::move(entry));
  return ordered;
}

}  // namespace prefork
