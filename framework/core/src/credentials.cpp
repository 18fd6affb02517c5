#include <prefork/core/credentials.hpp>
#include <prefork/core/decimal.hpp>
#include <prefork/error.hpp>

#include <grp.h>
#include <pwd.h>
#include <unistd.h>

#include <cerrno>
#include <optional>
#include <stdexcept>
#include <string_view>

namespace prefork {

namespace {

// getpwnam_r/getgrnam_r and their by-id twins want a buffer that may be too
// small (ERANGE): grow it until the entry fits.
template <class Entry, class Lookup>
std::optional<Entry> find_entry(const char* call, const std::string& what, std::string& buffer,
                                Lookup lookup) {
  Entry entry{};
  Entry* found = nullptr;
  for (buffer.resize(1024);; buffer.resize(buffer.size() * 2)) {
    int error = lookup(&entry, buffer.data(), buffer.size(), &found);
    if (error == ERANGE && buffer.size() < (1u << 20)) continue;
    // "Not found" is 0 with a null result, or one of these (getpwnam_r(3)).
    if (error == 0 || error == ENOENT || error == ESRCH || error == EBADF || error == EPERM) break;
    throw SystemError(call, error, what);
  }
  if (found == nullptr) return std::nullopt;
  return entry;
}

}  // namespace

Credentials Credentials::lookup(const std::string& user, const std::string& group) {
  Credentials result{.uid = ::getuid(), .gid = ::getgid(), .groups = {}};
  std::string user_buffer, group_buffer;
  if (!user.empty()) {
    auto entry = find_entry<passwd>("getpwnam_r", "user " + user, user_buffer,
                                    [&](passwd* e, char* b, std::size_t n, passwd** f) {
                                      return ::getpwnam_r(user.c_str(), e, b, n, f);
                                    });
    if (!entry)
      if (auto number = parse_decimal<unsigned long>(user))
        entry = find_entry<passwd>("getpwuid_r", "uid " + user, user_buffer,
                                   [&](passwd* e, char* b, std::size_t n, passwd** f) {
                                     return ::getpwuid_r(static_cast<uid_t>(*number), e, b, n, f);
                                   });
    if (!entry) throw std::runtime_error("--user: no such user '" + user + "'");
    result.uid = entry->pw_uid;
    result.gid = entry->pw_gid;
    // The user's groups as initgroups(3) computes them; looked up here, once,
    // so that a worker needs no name service after the fork.
    int count = 32;
    for (;;) {
      result.groups.resize(static_cast<std::size_t>(count));
      int wanted = count;
      if (::getgrouplist(entry->pw_name, entry->pw_gid, result.groups.data(), &wanted) >= 0) {
        result.groups.resize(static_cast<std::size_t>(wanted));
        break;
      }
      if (wanted <= count) wanted = count * 2;
      count = wanted;
    }
  }
  if (!group.empty()) {
    auto entry =
        find_entry<struct group>("getgrnam_r", "group " + group, group_buffer,
                                 [&](struct group* e, char* b, std::size_t n, struct group** f) {
                                   return ::getgrnam_r(group.c_str(), e, b, n, f);
                                 });
    std::optional<gid_t> gid;
    if (entry)
      gid = entry->gr_gid;
    else if (auto number = parse_decimal<unsigned long>(group))
      gid = static_cast<gid_t>(*number);
    if (!gid) throw std::runtime_error("--group: no such group '" + group + "'");
    // The primary group replaced; the user's other groups stay (as nginx's
    // `user www www`). Without a user only the given group remains.
    for (gid_t& member : result.groups)
      if (member == result.gid) member = *gid;
    result.gid = *gid;
    if (user.empty()) result.groups = {*gid};
  }
  return result;
}

void drop_privileges(const Credentials& to) {
  const std::string who = "uid " + std::to_string(to.uid) + " gid " + std::to_string(to.gid);
  if (::setgroups(to.groups.size(), to.groups.data()) != 0)
    throw SystemError("setgroups", errno, who);
  if (::setgid(to.gid) != 0) throw SystemError("setgid", errno, who);
  if (::setuid(to.uid) != 0) throw SystemError("setuid", errno, who);
  uid_t ruid, euid, suid;
  gid_t rgid, egid, sgid;
  if (::getresuid(&ruid, &euid, &suid) != 0) throw SystemError("getresuid", errno, who);
  if (::getresgid(&rgid, &egid, &sgid) != 0) throw SystemError("getresgid", errno, who);
  if (ruid != to.uid || euid != to.uid || suid != to.uid || rgid != to.gid || egid != to.gid ||
      sgid != to.gid)
    throw std::runtime_error("after dropping to " + who + " the process still has uids " +
                             std::to_string(ruid) + "/" + std::to_string(euid) + "/" +
                             std::to_string(suid) + " and gids " + std::to_string(rgid) + "/" +
                             std::to_string(egid) + "/" + std::to_string(sgid));
  if (to.uid != 0 && ::setuid(0) == 0)
    throw std::runtime_error("setuid(0) succeeded after dropping to " + who +
                             ": refusing to serve with root recoverable");
}

}  // namespace prefork
