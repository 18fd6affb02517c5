#include "pattern.hpp"

#include <regex>

namespace prefork::test {

struct Pattern::Compiled {
  std::regex regex;
};

Pattern::Pattern(const std::string& expression)
    : compiled_(std::make_unique<Compiled>(Compiled{std::regex(expression)})) {}
Pattern::~Pattern() = default;
Pattern::Pattern(Pattern&&) noexcept = default;
Pattern& Pattern::operator=(Pattern&&) noexcept = default;

bool Pattern::matches(std::string_view text) const {
  return std::regex_match(text.begin(), text.end(), compiled_->regex);
}

bool Pattern::found_in(std::string_view text) const {
  return std::regex_search(text.begin(), text.end(), compiled_->regex);
}

std::string Pattern::replaced(std::string_view text, const std::string& with) const {
  return std::regex_replace(std::string(text), compiled_->regex, with);
}

std::vector<std::string> Pattern::all(std::string_view text, std::size_t group) const {
  std::vector<std::string> found;
  using Iterator = std::regex_iterator<std::string_view::const_iterator>;
  for (Iterator it(text.begin(), text.end(), compiled_->regex), end; it != end; ++it)
    found.push_back((*it)[group].str());
  return found;
}

}  // namespace prefork::test
