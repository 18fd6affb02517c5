// --pid-file: the master's pid for init scripts, logrotate and kill(1),
// written atomically (a temporary file renamed over PATH, so a reader never
// sees it half written) once the listeners are open, removed at exit.
//
// For the binary upgrade, as nginx does: the old master renames PATH to
// PATH.oldbin before it starts the new master (which writes PATH), and
// renames it back if the new master fails.
#pragma once

#include <sys/types.h>

#include <optional>
#include <string>

namespace prefork {

class PidFile {
 public:
  // Writes this process's pid to `path`. Throws std::runtime_error when
  // `path` names a running prefork master (a live process running this same
  // program), SystemError when it cannot be written. A stale file (its
  // process is gone, or the pid now belongs to another program) is replaced.
  explicit PidFile(std::string path);
  PidFile(const PidFile&) = delete;
  PidFile& operator=(const PidFile&) = delete;
  // Removes the file, whether at PATH or at PATH.oldbin, if it still holds
  // this process's pid (a new master may own PATH by now). Only in the
  // process that wrote it: a forked child never removes it.
  ~PidFile();

  const std::string& path() const noexcept { return path_; }

 private:
  std::string path_;
  pid_t owner_;
};

// The pid a pid file holds; nullopt when it is missing or holds no pid.
std::optional<pid_t> read_pid_file(const std::string& path);
// True when `pid` is alive and runs the same program as this process
// (/proc/PID/exe, " (deleted)" ignored: a binary upgrade may have replaced
// it; where that link cannot be read, the name in /proc/PID/comm). A process
// whose program cannot be told at all counts as ours: refusing is the safe
// side.
bool runs_this_program(pid_t pid);

// The binary upgrade: PATH -> PATH.oldbin, and back after a failed one.
// Throw SystemError naming the rename.
std::string oldbin_path(const std::string& path);
void rename_pid_file_to_oldbin(const std::string& path);
void restore_pid_file_from_oldbin(const std::string& path);

}  // namespace prefork
