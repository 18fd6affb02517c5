// A byte buffer for the worker's I/O: grows without zero-filling, consumes
// from the front without moving bytes until room is needed, and gives its
// memory back (release, shrink) once a burst is over.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <memory>
#include <new>
#include <string_view>

namespace prefork {

class Buffer {
 public:
  // Doubling stops at `limit` (what the buffer should hold at most: a
  // message at the codec's limit plus one read), so that the last step does
  // not take twice that; a bigger need is still met exactly.
  void limit_growth(std::size_t limit) noexcept { growth_limit_ = limit; }

  std::size_t size() const noexcept { return end_ - begin_; }
  bool empty() const noexcept { return begin_ == end_; }
  const char* data() const noexcept { return storage_.get() + begin_; }
  std::string_view view() const noexcept { return {data(), size()}; }
  std::size_t capacity() const noexcept { return capacity_; }
  // The room after the end that prepare() would give without growing.
  std::size_t room() const noexcept { return capacity_ - end_; }
  char* end() noexcept { return storage_.get() + end_; }

  // Room for at least n more bytes after the end; write there, then commit().
  char* prepare(std::size_t n) {
    if (capacity_ - end_ < n) make_room(n);
    return storage_.get() + end_;
  }
  void commit(std::size_t n) noexcept { end_ += n; }
  char* append(std::size_t n) {
    char* at = prepare(n);
    commit(n);
    return at;
  }
  void append(std::string_view bytes) {
    if (!bytes.empty()) std::memcpy(append(bytes.size()), bytes.data(), bytes.size());
  }
  // Takes back the last n bytes appended.
  void unappend(std::size_t n) noexcept { end_ -= n; }
  void consume(std::size_t n) noexcept {
    begin_ += n;
    if (begin_ == end_) begin_ = end_ = 0;
  }
  // Gives memory back after a burst (a big frame, a slow reader).
  void release() noexcept {
    storage_.reset();
    capacity_ = begin_ = end_ = 0;
  }
  // Whether shrink(keep) would give memory back.
  bool shrinkable(std::size_t keep) const noexcept {
    return capacity_ > keep && size() <= capacity_ / 4;
  }
  // Gives back what a burst left: a buffer of more than `keep` bytes that
  // is at most a quarter full shrinks to what it holds (an empty one is
  // freed). The allocator returns blocks above its mmap threshold to the
  // kernel; shrinking one is an mremap, without a copy.
  void shrink(std::size_t keep) noexcept {
    if (!shrinkable(keep)) return;
    if (empty()) {
      release();
      return;
    }
    const std::size_t used = size();
    if (begin_ > 0) std::memmove(storage_.get(), data(), used);
    begin_ = 0;
    end_ = used;
    // A failed shrink keeps the bigger block, still valid.
    if (char* smaller = static_cast<char*>(std::realloc(storage_.get(), used))) {
      (void)storage_.release();
      storage_.reset(smaller);
      capacity_ = used;
    }
  }

 private:
  struct Free {
    void operator()(char* p) const noexcept { std::free(p); }
  };

  void make_room(std::size_t n) {
    const std::size_t used = size();
    if (capacity_ - used >= n && begin_ > 0 && used <= capacity_ / 2) {
      std::memmove(storage_.get(), data(), used);
      begin_ = 0;
      end_ = used;
      return;
    }
    const std::size_t doubled = std::min(capacity_ * 2, growth_limit_);
    const std::size_t wanted = std::max(doubled, used + n);
    // Bytes consumed from the front are not worth keeping: the live ones
    // move to the front first, and realloc (an mremap for a big block)
    // carries only them.
    if (begin_ > 0) std::memmove(storage_.get(), data(), used);
    begin_ = 0;
    end_ = used;
    char* bigger = static_cast<char*>(std::realloc(storage_.get(), wanted));
    if (bigger == nullptr) throw std::bad_alloc();
    (void)storage_.release();
    storage_.reset(bigger);
    capacity_ = wanted;
  }

  std::unique_ptr<char, Free> storage_;
  std::size_t capacity_ = 0;
  std::size_t begin_ = 0;
  std::size_t end_ = 0;
  std::size_t growth_limit_ = std::numeric_limits<std::size_t>::max();
};

}  // namespace prefork
