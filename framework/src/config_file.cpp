// toml++ header-only in this one file (see config_file.hpp): no formatters,
// exceptions on (toml::parse throws toml::parse_error).
#define TOML_HEADER_ONLY 1
#define TOML_ENABLE_FORMATTERS 0
// Malformed files break some of toml++ 3.3's internal assertions ("[&", a
// date then " 8,"), which are assert() without NDEBUG (a Debug build's
// master would abort on a bad --config) and __builtin_assume() with it where
// the compiler has it (clang: undefined behaviour no sanitizer reports).
// Neither, here: every build reads such a file as GCC's Release build does,
// to a parse_error.
#define TOML_ASSERT(expr) static_assert(true)
#include <toml++/impl/preprocessor.h>
#undef TOML_ASSUME
#define TOML_ASSUME(...) static_assert(true)
#include <toml++/toml.h>

#include <prefork/error.hpp>
#include <prefork/flag_parser.hpp>

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <tuple>
#include <utility>
#include <vector>

#include "config_file.hpp"
#include "toml_input.hpp"

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
