// The identity workers drop to (--user, --group): looked up by name once, in
// the master; handed to every worker in its WorkerParams; applied by the
// worker itself, after it has opened what needs the master's rights (its
// scoreboard slot, the --accept flock file) and before any handler code runs.
#pragma once

#include <sys/types.h>

#include <string>
#include <vector>

namespace prefork {

struct Credentials {
  uid_t uid = 0;
  gid_t gid = 0;
  std::vector<gid_t> groups;  // the supplementary groups, as initgroups(3) would set them

  // For the master. `user`: a name or a number; its primary group and its
  // supplementary groups (getgrouplist) come with it. `group` (a name or a
  // number) replaces the primary group. With `user` empty: this process's
  // uid, `group` as the only group. Throws std::runtime_error naming an
  // unknown user or group.
  static Credentials lookup(const std::string& user, const std::string& group);

  bool operator==(const Credentials&) const = default;
};

// For a worker: setgroups, setgid, setuid, in that order (each one would be
// refused once the one after it has run), each checked; then checks that the
// drop cannot be undone: setuid(0) must fail, and the real, effective and
// saved ids must all be the new ones. Throws SystemError naming the call, or
// std::runtime_error when root could be regained.
void drop_privileges(const Credentials& to);

}  // namespace prefork
