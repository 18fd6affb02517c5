// Error conventions shared by every layer.
//
// Set-up code throws SystemError (the call's name and errno text in what()).
// Hot paths return codes and log through log_sys_error(); neither throws.
#pragma once

#include <stdexcept>
#include <string>
#include <string_view>

namespace prefork {

// A failed system call during set-up: "bind 127.0.0.1:80: Permission denied".
class SystemError : public std::runtime_error {
 public:
  SystemError(std::string_view call, int error, std::string_view detail = {});
  int error() const noexcept { return error_; }

 private:
  int error_;
};

// strerror_r wrapped as a std::string (thread-safe).
std::string errno_text(int error);

}  // namespace prefork
