#include <prefork/error.hpp>
#include <prefork/log.hpp>

#include <unistd.h>

#include <cstdarg>
#include <cstdio>

namespace prefork {

namespace {
const char* role = "master";

// Formats the whole line first so it leaves in one write(2): lines from the
// master and its workers share stderr and must not interleave.
void emit(const char* text, std::size_t length) {
  while (length > 0) {
    ssize_t n = ::write(STDERR_FILENO, text, length);
    if (n <= 0) return;
    text += n;
    length -= static_cast<std::size_t>(n);
  }
}

std::size_t prefix(char* line, std::size_t size) {
  int n = std::snprintf(line, size, "prefork[%d] %s: ", static_cast<int>(::getpid()), role);
  return n < 0 ? 0 : std::min(static_cast<std::size_t>(n), size - 1);
}

void finish(char* line, std::size_t used, std::size_t size) {
  used = std::min(used, size - 2);
  line[used++] = '\n';
  emit(line, used);
}
}  // namespace

void set_log_role(const char* new_role) { role = new_role; }

void log_info(const char* format, ...) {
  char line[1024];
  std::size_t used = prefix(line, sizeof line);
  va_list args;
  va_start(args, format);
  int n = std::vsnprintf(line + used, sizeof line - used, format, args);
  va_end(args);
  finish(line, used + (n < 0 ? 0 : static_cast<std::size_t>(n)), sizeof line);
}

void reopen_log() { log_info("reopening log files"); }

void log_sys_error(const char* call, int error, const char* context_format, ...) {
  char line[1024];
  std::size_t used = prefix(line, sizeof line);
  int n = std::snprintf(line + used, sizeof line - used, "%s failed: %s", call,
                        errno_text(error).c_str());
  used = std::min(used + (n < 0 ? 0 : static_cast<std::size_t>(n)), sizeof line - 1);
  if (context_format != nullptr && used + 3 < sizeof line) {
    line[used++] = ' ';
    line[used++] = '(';
    va_list args;
    va_start(args, context_format);
    n = std::vsnprintf(line + used, sizeof line - used, context_format, args);
    va_end(args);
    used = std::min(used + (n < 0 ? 0 : static_cast<std::size_t>(n)), sizeof line - 2);
    line[used++] = ')';
  }
  finish(line, used, sizeof line);
}

}  // namespace prefork
