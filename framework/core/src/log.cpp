#include <prefork/core/utf8.hpp>
#include <prefork/error.hpp>
#include <prefork/log.hpp>

#include <fcntl.h>
#include <time.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdarg>
#include <cstdio>

namespace prefork {

namespace {

// Set before the process logs from several threads (configure_log,
// set_log_*); the level and format may be read by any thread at any time.
LogSettings settings;
std::atomic<LogLevel> threshold{LogLevel::info};
std::atomic<LogFormat> format{LogFormat::text};
// The descriptor lines go to: stderr, or the log file's. reopen_log() keeps
// its number, so it never changes while threads log; a reload that changes
// the file may (the master's metrics thread logs meanwhile): atomic.
std::atomic<int> log_fd{STDERR_FILENO};

const char* role = "master";
bool is_worker = false;
unsigned worker_slot = 0;
std::uint64_t worker_generation = 0;
char worker_role[64];

constexpr std::size_t message_size = 2048;
// Room for a message escaped for JSON (at worst 6 bytes a byte) and the rest.
constexpr std::size_t line_size = 6 * message_size + 512;

// One line being put together in a buffer of its own; what does not fit is
// cut, and the newline always fits.
class Line {
 public:
  void put(char c) noexcept {
    if (used_ < line_size - 1) text_[used_++] = c;
  }
  void put(std::string_view s) noexcept {
    for (char c : s) put(c);
  }
  __attribute__((format(printf, 2, 3))) void printf(const char* format, ...) noexcept {
    va_list args;
    va_start(args, format);
    const int n = std::vsnprintf(text_ + used_, line_size - 1 - used_, format, args);
    va_end(args);
    if (n > 0) used_ = std::min(used_ + static_cast<std::size_t>(n), line_size - 2);
  }
  // A JSON string: quotes, escapes, and U+FFFD for what is not UTF-8.
  void json(std::string_view s) noexcept {
    put('"');
    for (std::size_t i = 0; i < s.size();) {
      const unsigned char c = static_cast<unsigned char>(s[i]);
      if (c == '"' || c == '\\') {
        put('\\');
        put(static_cast<char>(c));
      } else if (c == '\n') {
        put("\\n");
      } else if (c == '\r') {
        put("\\r");
      } else if (c == '\t') {
        put("\\t");
      } else if (c < 0x20 || c == 0x7F) {
        printf("\\u%04x", c);
      } else if (c >= 0x80) {
        const std::size_t n = utf8_length(s, i);
        if (n == 0) {
          put("\\ufffd");
          ++i;
          continue;
        }
        put(s.substr(i, n));
        i += n;
        continue;
      } else {
        put(static_cast<char>(c));
      }
      ++i;
    }
    put('"');
  }
  // The message as one line of text: a newline in it is written as \n.
  void text(std::string_view s) noexcept {
    for (char c : s) {
      if (c == '\n')
        put("\\n");
      else if (c == '\r')
        put("\\r");
      else
        put(c);
    }
  }
  // Ends the line and writes it in one write(2) (more only if the kernel
  // takes part of it, which a regular file or a pipe under PIPE_BUF does not).
  void emit() noexcept {
    text_[used_++] = '\n';
    const char* at = text_;
    std::size_t left = used_;
    while (left > 0) {
      const ssize_t n = ::write(log_fd.load(std::memory_order_relaxed), at, left);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) return;
      at += n;
      left -= static_cast<std::size_t>(n);
    }
  }

 private:
  char text_[line_size];
  std::size_t used_ = 0;
};

// "2026-11-29T11:45:00.123Z": UTC, milliseconds.
void put_time(Line& line) noexcept {
  timespec now{};
  ::clock_gettime(CLOCK_REALTIME, &now);
  tm utc{};
  ::gmtime_r(&now.tv_sec, &utc);
  line.printf("%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ", utc.tm_year + 1900, utc.tm_mon + 1,
              utc.tm_mday, utc.tm_hour, utc.tm_min, utc.tm_sec, now.tv_nsec / 1'000'000);
}

void write_line(LogLevel level, std::string_view message) noexcept {
  const int saved_errno = errno;
  Line line;
  const int pid = static_cast<int>(::getpid());
  if (format.load(std::memory_order_relaxed) == LogFormat::json) {
    line.put("{\"time\":\"");
    put_time(line);
    line.put("\",\"level\":\"");
    line.put(log_level_name(level));
    line.printf("\",\"pid\":%d,\"role\":", pid);
    if (is_worker) {
      line.printf("\"worker\",\"slot\":%u,\"generation\":%llu", worker_slot,
                  static_cast<unsigned long long>(worker_generation));
    } else {
      line.json(role);
    }
    line.put(",\"message\":");
    line.json(message);
    line.put('}');
  } else {
    put_time(line);
    line.put(' ');
    line.put(log_level_name(level));
    line.printf(" prefork[%d] %s: ", pid, is_worker ? worker_role : role);
    line.text(message);
  }
  line.emit();
  errno = saved_errno;
}

void log_v(LogLevel level, const char* format, va_list args) noexcept {
  if (!log_enabled(level)) return;
  char message[message_size];
  const int n = std::vsnprintf(message, sizeof message, format, args);
  const std::size_t length = n < 0 ? 0 : std::min(static_cast<std::size_t>(n), sizeof message - 1);
  write_line(level, std::string_view(message, length));
}

// Opens `path` and makes it the log's descriptor: a new one after stderr,
// else the same number (dup3), so that a thread writing meanwhile never
// meets a closed descriptor. 0, or the errno of the call named in `call`
// (the log's descriptor unchanged).
int install_log_file(const std::string& path, const char*& call) noexcept {
  const int fd = ::open(path.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
  if (fd < 0) {
    call = "open";
    return errno;
  }
  if (log_fd.load() == STDERR_FILENO) {
    log_fd.store(fd);
    return 0;
  }
  const int error = ::dup3(fd, log_fd.load(), O_CLOEXEC) < 0 ? errno : 0;
  ::close(fd);
  call = "dup3";
  return error;
}

}  // namespace

std::string_view log_level_name(LogLevel level) noexcept {
  switch (level) {
    case LogLevel::debug:
      return "debug";
    case LogLevel::info:
      return "info";
    case LogLevel::warning:
      return "warning";
    case LogLevel::error:
      return "error";
  }
  return "info";
}

std::optional<LogLevel> log_level_from_name(std::string_view name) noexcept {
  for (LogLevel level : {LogLevel::debug, LogLevel::info, LogLevel::warning, LogLevel::error})
    if (log_level_name(level) == name) return level;
  return std::nullopt;
}

std::string_view log_format_name(LogFormat format) noexcept {
  return format == LogFormat::json ? "json" : "text";
}

std::optional<LogFormat> log_format_from_name(std::string_view name) noexcept {
  if (name == "text") return LogFormat::text;
  if (name == "json") return LogFormat::json;
  return std::nullopt;
}

void configure_log(const LogSettings& wanted) {
  if (wanted.file.empty()) {
    const int old = log_fd.exchange(STDERR_FILENO);
    if (old != STDERR_FILENO) ::close(old);
  } else {
    const char* call = nullptr;
    if (const int error = install_log_file(wanted.file, call))
      throw SystemError(call, error, "log file " + wanted.file);
  }
  settings = wanted;
  threshold.store(wanted.level, std::memory_order_relaxed);
  format.store(wanted.format, std::memory_order_relaxed);
}

const LogSettings& log_settings() noexcept { return settings; }

bool reopen_log() {
  if (settings.file.empty()) {
    log_info("reopening log files: none, the log goes to stderr");
    return true;
  }
  const char* call = nullptr;
  if (const int error = install_log_file(settings.file, call)) {
    log_sys_error(call, error, "log file %s: still writing to the file it had",
                  settings.file.c_str());
    return false;
  }
  log_info("reopened the log file %s", settings.file.c_str());
  return true;
}

void set_log_role(const char* new_role) {
  role = new_role;
  is_worker = false;
}

void set_log_worker(unsigned slot, std::uint64_t generation) {
  worker_slot = slot;
  worker_generation = generation;
  std::snprintf(worker_role, sizeof worker_role, "worker %u gen %llu", slot,
                static_cast<unsigned long long>(generation));
  is_worker = true;
}

bool log_enabled(LogLevel level) noexcept {
  return level >= threshold.load(std::memory_order_relaxed);
}

void log_debug(const char* format, ...) {
  va_list args;
  va_start(args, format);
  log_v(LogLevel::debug, format, args);
  va_end(args);
}

void log_info(const char* format, ...) {
  va_list args;
  va_start(args, format);
  log_v(LogLevel::info, format, args);
  va_end(args);
}

void log_warning(const char* format, ...) {
  va_list args;
  va_start(args, format);
  log_v(LogLevel::warning, format, args);
  va_end(args);
}

void log_error(const char* format, ...) {
  va_list args;
  va_start(args, format);
  log_v(LogLevel::error, format, args);
  va_end(args);
}

void log_sys_error(const char* call, int error, const char* context_format, ...) {
  if (!log_enabled(LogLevel::error)) return;
  char message[message_size];
  int n = std::snprintf(message, sizeof message, "%s failed: %s", call, errno_text(error).c_str());
  std::size_t used = n < 0 ? 0 : std::min(static_cast<std::size_t>(n), sizeof message - 1);
  if (context_format != nullptr && used + 3 < sizeof message) {
    message[used++] = ' ';
    message[used++] = '(';
    va_list args;
    va_start(args, context_format);
    n = std::vsnprintf(message + used, sizeof message - used, context_format, args);
    va_end(args);
    used = std::min(used + (n < 0 ? 0 : static_cast<std::size_t>(n)), sizeof message - 2);
    message[used++] = ')';
  }
  write_line(LogLevel::error, std::string_view(message, used));
}

}  // namespace prefork
