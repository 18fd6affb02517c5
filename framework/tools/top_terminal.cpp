#include "top_terminal.hpp"

#include <poll.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include <cerrno>
#include <csignal>
#include <cstring>
#include <stdexcept>
#include <string>

namespace prefork_top {

namespace {

volatile std::sig_atomic_t stop_flag = 0, resize_flag = 0, suspend_flag = 0;

extern "C" void on_stop(int) { stop_flag = 1; }
extern "C" void on_resize(int) { resize_flag = 1; }
extern "C" void on_suspend(int) { suspend_flag = 1; }

// ANSI/VT100: cursor home, erase the screen, erase a line, erase below.
constexpr std::string_view home = "\x1b[H", clear_screen = "\x1b[2J", clear_line = "\x1b[2K",
                           clear_below = "\x1b[J", hide_cursor = "\x1b[?25l",
                           show_cursor = "\x1b[?25h";

}  // namespace

bool write_all(int fd, std::string_view text) {
  while (!text.empty()) {
    const ssize_t n = ::write(fd, text.data(), text.size());
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    text.remove_prefix(static_cast<std::size_t>(n));
  }
  return true;
}

Signals::Signals(bool handle_suspend) {
  struct Handled {
    int signal;
    void (*handler)(int);
  };
  const Handled handled[] = {{SIGINT, on_stop},  {SIGTERM, on_stop},    {SIGHUP, on_stop},
                             {SIGQUIT, on_stop}, {SIGWINCH, on_resize}, {SIGTSTP, on_suspend}};
  sigset_t blocked;
  sigemptyset(&blocked);
  for (const Handled& h : handled) {
    if (h.signal == SIGTSTP && !handle_suspend) continue;
    sigaddset(&blocked, h.signal);
    struct sigaction action {};
    action.sa_handler = h.handler;
    sigemptyset(&action.sa_mask);
    ::sigaction(h.signal, &action, nullptr);
  }
  ::sigprocmask(SIG_BLOCK, &blocked, &sleep_mask_);
  for (const Handled& h : handled) sigdelset(&sleep_mask_, h.signal);
}

bool Signals::wait(std::uint64_t timeout_ns, int fd) {
  const timespec timeout{static_cast<time_t>(timeout_ns / 1'000'000'000),
                         static_cast<long>(timeout_ns % 1'000'000'000)};
  pollfd key{fd, POLLIN, 0};
  const int n = ::ppoll(fd >= 0 ? &key : nullptr, fd >= 0 ? 1 : 0, &timeout, &sleep_mask_);
  if (n < 0 && errno != EINTR)
    throw std::runtime_error(std::string("ppoll: ") + std::strerror(errno));
  return n > 0 && key.revents != 0;
}

bool Signals::stop_requested() const noexcept { return stop_flag != 0; }

bool Signals::take_resize() noexcept {
  const bool was = resize_flag != 0;
  resize_flag = 0;
  return was;
}

bool Signals::take_suspend() noexcept {
  const bool was = suspend_flag != 0;
  suspend_flag = 0;
  return was;
}

Terminal::Terminal(int input, int output) : input_(input), output_(output), keys_open_(input >= 0) {
  measure();
  take();
}

Terminal::~Terminal() { restore(); }

void Terminal::take() {
  // Read again each time: the shell may have changed the modes while we
  // were suspended.
  if (input_ >= 0 && ::tcgetattr(input_, &saved_) == 0) {
    saved_valid_ = true;
    termios raw = saved_;
    raw.c_lflag &= ~static_cast<tcflag_t>(ICANON | ECHO);  // ISIG stays: Ctrl-C still stops
    raw.c_cc[VMIN] = 1;
    raw.c_cc[VTIME] = 0;
    ::tcsetattr(input_, TCSANOW, &raw);
  }
  taken_ = true;
  clear_next_ = true;
  write_all(output_, hide_cursor);
}

void Terminal::restore() noexcept {
  if (!taken_) return;
  taken_ = false;
  // Below the last frame, which stays on the screen.
  std::string out(show_cursor);
  if (drawn_) out += "\r\n";
  drawn_ = false;
  write_all(output_, out);
  if (saved_valid_) ::tcsetattr(input_, TCSANOW, &saved_);
}

void Terminal::measure() noexcept {
  winsize size{};
  if (::ioctl(output_, TIOCGWINSZ, &size) == 0 && size.ws_col > 0 && size.ws_row > 0) {
    columns_ = size.ws_col;
    rows_ = size.ws_row;
  }
  clear_next_ = true;
}

bool Terminal::draw(const std::vector<std::string>& lines) {
  // Each line is erased just before it is written rather than the whole
  // screen first, so nothing flickers. The rows below the frame are erased
  // before the last line, not after it: a line as wide as the window
  // leaves the cursor on its last character, which an erase would remove.
  std::string frame(home);
  if (clear_next_) frame += clear_screen;
  clear_next_ = false;
  for (std::size_t i = 0; i < lines.size(); ++i) {
    const bool last = i + 1 == lines.size();
    frame += last ? clear_below : clear_line;
    frame += lines[i];
    if (!last) frame += "\r\n";
  }
  if (lines.empty()) frame += clear_below;
  drawn_ = true;
  return write_all(output_, frame);
}

bool Terminal::quit_key() noexcept {
  char keys[64];
  const ssize_t n = ::read(input_, keys, sizeof keys);
  if (n <= 0) {
    if (n == 0 || (errno != EINTR && errno != EAGAIN)) keys_open_ = false;  // no keyboard any more
    return false;
  }
  for (ssize_t i = 0; i < n; ++i)
    if (keys[i] == 'q' || keys[i] == 'Q') return true;
  return false;
}

}  // namespace prefork_top
