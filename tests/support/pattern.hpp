// A regular expression for the tests' checks of text (log lines, help, a
// screen), with std::regex compiled in one place: <regex> costs each file
// that includes it seconds of compilation.
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace prefork::test {

class Pattern {
 public:
  // ECMAScript syntax, as std::regex; throws std::regex_error if malformed.
  explicit Pattern(const std::string& expression);
  ~Pattern();
  Pattern(Pattern&&) noexcept;
  Pattern& operator=(Pattern&&) noexcept;

  // The whole of `text` matches.
  bool matches(std::string_view text) const;
  // Some part of `text` matches.
  bool found_in(std::string_view text) const;
  // Every match replaced by `with`.
  std::string replaced(std::string_view text, const std::string& with) const;
  // Sub-match `group` of every match, in order.
  std::vector<std::string> all(std::string_view text, std::size_t group = 0) const;

 private:
  struct Compiled;
  std::unique_ptr<Compiled> compiled_;
};

}  // namespace prefork::test
