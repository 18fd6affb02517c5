#include <prefork/error.hpp>

#include <cstring>

namespace prefork {

namespace {
std::string describe(std::string_view call, int error, std::string_view detail) {
  std::string text(call);
  if (!detail.empty()) {
    text += ' ';
    text += detail;
  }
  text += ": ";
  text += errno_text(error);
  return text;
}
}  // namespace

SystemError::SystemError(std::string_view call, int error, std::string_view detail)
    : std::runtime_error(describe(call, error, detail)), error_(error) {}

std::string errno_text(int error) {
  char buffer[256];
  // GNU strerror_r may return a static string instead of filling the buffer.
  return ::strerror_r(error, buffer, sizeof buffer);
}

}  // namespace prefork
