#include "toml_input.hpp"

#include <prefork/flag_parser.hpp>

#include <cctype>
#include <cstddef>
#include <cstdio>
#include <string_view>
#include <utility>
#include <vector>

#include "config_file.hpp"

namespace prefork {

namespace {

constexpr auto npos = std::string_view::npos;
constexpr std::string_view outside_strings = "a non-ASCII character outside a string or a comment";

// The code point of the UTF-8 sequence at text[i], and its length; length 0
// for one that is not UTF-8 (overlong, a surrogate, beyond U+10FFFF).
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

bool is_control(unsigned char byte) { return (byte < 0x20 && byte != '\t') || byte == 0x7F; }

}  // namespace

std::string readable_by_toml(const std::string& path, const std::string& text) {
  enum class In { code, comment, basic, literal, multi_basic, multi_literal } in = In::code;
  // Where toml++ is in the code: reading a key (a line's start; after '{'
  // or ',' in an inline table; a table header) or a value (after '='; in an
  // array). `open`: the brackets around, '[' an array, '{' an inline table,
  // 'h' a table header.
  bool expect_value = false;
  std::vector<char> open;
  // Whether a quote here opens a string as toml++ reads it: at the start of
  // a key, a dotted key's part or a value. Anywhere else toml++ fails at the
  // quote, or reads it into a bare value (below).
  bool quote_opens = true;
  unsigned line = 1;
  std::string readable;
  readable.reserve(text.size());

  const auto at = [&](std::size_t i, std::string_view what) {
    return text.compare(i, what.size(), what) == 0;
  };
  const auto refuse = [&](std::string_view what) {
    std::string message = config_location(path, line);
    message += ": ";
    message += what;
    throw flags::UsageError(message);
  };
  // A multi-line string ends at its delimiter and up to two more quotes,
  // which belong to the string.
  const auto close_multi_line = [&](std::size_t& i, char quote) {
    std::size_t end = i + 3;
    while (end < text.size() && end < i + 5 && text[end] == quote) ++end;
    readable.append(text, i, end - i);
    i = end - 1;
    in = In::code;
    quote_opens = false;
  };
  // toml++'s value terminators (the ASCII ones; it asks of every other
  // character, non-ASCII ones included, whether it is one).
  constexpr std::string_view value_end = " \t\r\n,]}#";
  // Where toml++'s reading of a bare value from text[i] ends; `first_any`:
  // it reads text[i] whatever it is.
  const auto bare_value_end = [&](std::size_t i, bool first_any) {
    for (; i < text.size() && (first_any || value_end.find(text[i]) == npos); ++i) {
      first_any = false;
      const auto b = static_cast<unsigned char>(text[i]);
      if (b >= 0x80) refuse(outside_strings);
      if (text[i] == '\n')
        ++line;
      else if (is_control(b) && text[i] != '\r')
        break;  // refused by the loop
    }
    return i;
  };

  for (std::size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    const auto byte = static_cast<unsigned char>(c);
    // TOML allows no control character but tab and a line's end, anywhere;
    // refusing them here keeps this scan and toml++'s in step.
    if (is_control(byte) && c != '\n' && !(c == '\r' && at(i, "\r\n"))) {
      char what[32];
      std::snprintf(what, sizeof what, "a control character (0x%02X)", byte);
      refuse(what);
    }
    if (c == '\n') {
      ++line;
      if (in == In::comment || in == In::basic || in == In::literal) in = In::code;
      if (in == In::code) {
        if (open.empty()) expect_value = false;
        quote_opens = true;
      }
      readable += c;
      continue;
    }
    switch (in) {
      case In::code:
        if (byte >= 0x80) refuse(outside_strings);
        if (expect_value && value_end.find(c) == npos && c != '"' && c != '\'' && c != '[' &&
            c != '{') {
          // A bare value (a number, a date, a boolean, or a mistake): toml++
          // reads it to its end, whatever it holds, quotes included; after
          // a space and a digit (a date's time?) it reads on, the character
          // after the digit whatever it is (a line's end too), then to the
          // next end (what it read then is never valid: it fails after).
          std::size_t end = bare_value_end(i, false);
          if (end + 1 < text.size() && text[end] == ' ' &&
              std::isdigit(static_cast<unsigned char>(text[end + 1])))
            end = bare_value_end(end + 2, true);
          readable.append(text, i, end - i);
          i = end - 1;
          quote_opens = false;
          break;
        }
        if ((c == '"' || c == '\'') && quote_opens) {
          if (at(i, c == '"' ? "\"\"\"" : "'''")) {
            readable.append(text, i, 3);
            i += 2;
            in = c == '"' ? In::multi_basic : In::multi_literal;
          } else {
            readable += c;
            in = c == '"' ? In::basic : In::literal;
          }
          break;
        }
        readable += c;
        switch (c) {
          case '#':
            in = In::comment;
            break;
          case '=':
            expect_value = quote_opens = true;
            break;
          case '[':
            open.push_back(expect_value ? '[' : 'h');
            quote_opens = true;
            break;
          case '{':
            open.push_back('{');
            expect_value = false;
            quote_opens = true;
            break;
          case ',':
            if (!open.empty()) expect_value = open.back() == '[';
            quote_opens = true;
            break;
          case ']':
          case '}':
            if (!open.empty()) open.pop_back();
            expect_value = !open.empty() && open.back() == '[';
            quote_opens = false;
            break;
          case '.':
            quote_opens = !expect_value;
            break;  // a dotted key's next part
          case ' ':
          case '\t':
          case '\r':
            break;
          default:
            quote_opens = false;
        }
        break;
      case In::comment:
        readable += c;
        break;
      case In::basic:
      case In::multi_basic:
        if (byte >= 0x80) {
          const auto [point, length] = code_point_at(text, i);
          if (length == 0) refuse("not UTF-8");
          char escape[16];
          std::snprintf(escape, sizeof escape, point > 0xFFFF ? "\\U%08X" : "\\u%04X",
                        static_cast<unsigned>(point));
          readable += escape;
          i += length - 1;
        } else if (c == '\\' && i + 1 < text.size()) {
          const auto next = static_cast<unsigned char>(text[i + 1]);
          if (next >= 0x80)
            refuse("a backslash before a non-ASCII character (TOML's escapes are ASCII)");
          readable += c;
          // The escaped character cannot end the string; a line's end after
          // it (a line-ending backslash) is counted by the loop.
          if (!is_control(next)) readable += text[++i];
        } else if (in == In::multi_basic && at(i, "\"\"\"")) {
          close_multi_line(i, '"');
        } else {
          readable += c;
          if (in == In::basic && c == '"') in = In::code, quote_opens = false;
        }
        break;
      case In::literal:
        readable += c;
        if (c == '\'') in = In::code, quote_opens = false;
        break;
      case In::multi_literal:
        if (at(i, "'''"))
          close_multi_line(i, '\'');
        else
          readable += c;
        break;
    }
  }
  return readable;
}

}  // namespace prefork
