#include "pid_file.hpp"

#include <prefork/core/decimal.hpp>

#include <prefork/error.hpp>
#include <prefork/log.hpp>
#include <prefork/unique_fd.hpp>

#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <unistd.h>

#include <cerrno>
#include <fstream>
#include <stdexcept>
#include <string_view>

namespace prefork {

namespace {

std::optional<std::string> executable_of(pid_t pid) {
  char target[4096];
  const std::string link = "/proc/" + std::to_string(pid) + "/exe";
  ssize_t n = ::readlink(link.c_str(), target, sizeof target);
  if (n < 0) return std::nullopt;
  std::string path(target, static_cast<std::size_t>(n));
  constexpr std::string_view deleted = " (deleted)";
  if (path.ends_with(deleted)) path.resize(path.size() - deleted.size());
  return path;
}

// The kernel's short name of the program (15 characters at most): readable
// for every process, where /proc/PID/exe may not be (another user, another
// namespace).
std::optional<std::string> command_of(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/comm");
  std::string name;
  if (!std::getline(in, name)) return std::nullopt;
  return name;
}

bool process_exists(pid_t pid) { return ::kill(pid, 0) == 0 || errno == EPERM; }

}  // namespace

std::optional<pid_t> read_pid_file(const std::string& path) {
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd) {
    if (errno == ENOENT) return std::nullopt;
    throw SystemError("open", errno, path);
  }
  char text[32];
  ssize_t n = ::read(fd.get(), text, sizeof text - 1);
  if (n < 0) throw SystemError("read", errno, path);
  std::string_view view(text, static_cast<std::size_t>(n));
  while (!view.empty() && (view.back() == '\n' || view.back() == ' ')) view.remove_suffix(1);
  auto pid = parse_decimal<pid_t>(view);
  if (!pid || *pid <= 0) return std::nullopt;
  return pid;
}

bool runs_this_program(pid_t pid) {
  if (pid <= 0 || !process_exists(pid)) return false;
  auto theirs = executable_of(pid);
  auto ours = executable_of(::getpid());
  if (theirs && ours) return *theirs == *ours;
  auto their_name = command_of(pid);
  auto our_name = command_of(::getpid());
  if (their_name && our_name) return *their_name == *our_name;
  return true;  // cannot tell: assume a master
}

PidFile::PidFile(std::string path) : path_(std::move(path)), owner_(::getpid()) {
  if (auto pid = read_pid_file(path_); pid && *pid != owner_) {
    if (runs_this_program(*pid))
      throw std::runtime_error("pid file " + path_ + " names running master " +
                               std::to_string(*pid) + "; stop it first or give another --pid-file");
    log_info("pid file %s names pid %d, which is not a running master: replacing it", path_.c_str(),
             static_cast<int>(*pid));
  }
  const std::string temporary = path_ + ".tmp." + std::to_string(owner_);
  UniqueFd fd(::open(temporary.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644));
  if (!fd) throw SystemError("open", errno, temporary);
  const std::string text = std::to_string(owner_) + "\n";
  if (::write(fd.get(), text.data(), text.size()) != static_cast<ssize_t>(text.size())) {
    int error = errno;
    ::unlink(temporary.c_str());
    throw SystemError("write", error, temporary);
  }
  fd.reset();
  if (::rename(temporary.c_str(), path_.c_str()) != 0) {
    int error = errno;
    ::unlink(temporary.c_str());
    throw SystemError("rename", error, temporary + " to " + path_);
  }
}

PidFile::~PidFile() {
  if (::getpid() != owner_) return;
  for (const std::string& candidate : {path_, oldbin_path(path_)}) {
    try {
      if (read_pid_file(candidate) == owner_ && ::unlink(candidate.c_str()) != 0)
        log_sys_error("unlink", errno, "%s", candidate.c_str());
    } catch (const std::exception& e) {
      log_info("pid file: %s", e.what());
    }
  }
}

std::string oldbin_path(const std::string& path) { return path + ".oldbin"; }

void rename_pid_file_to_oldbin(const std::string& path) {
  if (::rename(path.c_str(), oldbin_path(path).c_str()) != 0)
    throw SystemError("rename", errno, path + " to " + oldbin_path(path));
}

void restore_pid_file_from_oldbin(const std::string& path) {
  if (::rename(oldbin_path(path).c_str(), path.c_str()) != 0)
    throw SystemError("rename", errno, oldbin_path(path) + " to " + path);
}

}  // namespace prefork
