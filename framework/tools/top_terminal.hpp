// prefork-top's hold on the process and the terminal: the signals it
// answers, and the live view's terminal modes, each undone on every way out.
#pragma once

#include <termios.h>

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace prefork_top {

// write(2) until all of `text` is out; false (errno set) on failure.
bool write_all(int fd, std::string_view text);

// SIGINT, SIGTERM, SIGHUP and SIGQUIT ask to stop, SIGWINCH to measure the
// window again and, for the live view only, SIGTSTP to give the terminal
// back before stopping. They stay blocked except inside wait(), so that a
// request can never slip in between a check of the flags and the sleep.
class Signals {
 public:
  explicit Signals(bool handle_suspend);
  Signals(const Signals&) = delete;
  Signals& operator=(const Signals&) = delete;

  // Sleeps for `timeout_ns`, or until a signal comes or `fd` (-1: none)
  // becomes readable; true in the last case. Throws on failure.
  bool wait(std::uint64_t timeout_ns, int fd);

  bool stop_requested() const noexcept;
  bool take_resize() noexcept;   // true once per SIGWINCH
  bool take_suspend() noexcept;  // true once per SIGTSTP

 private:
  sigset_t sleep_mask_;
};

// The live view's terminal: input without line editing or echo (a 'q'
// arrives at once and is not shown), cursor hidden, frames drawn in place.
// restore() undoes it all and the destructor calls it, so quitting, a stop
// signal or an exception all leave the terminal as they found it.
class Terminal {
 public:
  // `input`: the keyboard, or -1 when stdin is not a terminal.
  Terminal(int input, int output);
  ~Terminal();
  Terminal(const Terminal&) = delete;
  Terminal& operator=(const Terminal&) = delete;

  void take();
  void restore() noexcept;

  // Reads the window size (TIOCGWINSZ); the next draw clears the screen.
  void measure() noexcept;
  unsigned columns() const noexcept { return columns_; }
  unsigned rows() const noexcept { return rows_; }

  // Draws lines already fitted to the window, from its top left.
  bool draw(const std::vector<std::string>& lines);

  // The descriptor to wait on for keys, or -1.
  int key_fd() const noexcept { return keys_open_ ? input_ : -1; }
  // Reads the keys waiting; true when one of them asks to quit.
  bool quit_key() noexcept;

 private:
  int input_, output_;
  bool keys_open_;
  termios saved_{};
  bool saved_valid_ = false;
  bool taken_ = false;
  bool drawn_ = false;
  bool clear_next_ = true;
  unsigned columns_ = 80, rows_ = 24;
};

}  // namespace prefork_top
