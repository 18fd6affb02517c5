#include <prefork/core/decimal.hpp>
#include <prefork/core/environment.hpp>

#include <cstdlib>
#include <stdexcept>
#include <string_view>

namespace prefork::env {

std::optional<long> number(const char* name) {
  const char* text = std::getenv(name);
  if (text == nullptr) return std::nullopt;
  auto value = parse_decimal<long>(text);
  if (!value) throw std::runtime_error(std::string(name) + "='" + text + "' is not a number");
  return value;
}

std::vector<std::string> listen_fd_names() {
  std::vector<std::string> names;
  const char* text = std::getenv(listen_fdnames);
  if (text == nullptr) return names;
  std::string_view rest(text);
  for (;;) {
    const std::size_t colon = rest.find(':');
    names.emplace_back(rest.substr(0, colon));
    if (colon == rest.npos) return names;
    rest.remove_prefix(colon + 1);
  }
}

}  // namespace prefork::env
