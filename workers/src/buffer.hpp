// A byte buffer for the worker's I/O: grows without zero-filling, consumes
// from the front without moving bytes until room is needed.
#pragma once

#include <cstddef>
#include <cstring>
#include <memory>
#include <string_view>

namespace prefork {

class Buffer {
 public:
  std::size_t size() const noexcept { return end_ - begin_; }
  bool empty() const noexcept { return begin_ == end_; }
  const char* data() const noexcept { return storage_.get() + begin_; }
  std::string_view view() const noexcept { return {data(), size()}; }
  std::size_t capacity() const noexcept { return capacity_; }

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

 private:
  void make_room(std::size_t n) {
    std::size_t used = size();
    if (capacity_ - used >= n && begin_ > 0 && used <= capacity_ / 2) {
      std::memmove(storage_.get(), data(), used);
    } else {
      std::size_t wanted = capacity_ * 2 > used + n ? capacity_ * 2 : used + n;
      auto bigger = std::make_unique_for_overwrite<char[]>(wanted);
      if (used > 0) std::memcpy(bigger.get(), data(), used);
      storage_ = std::move(bigger);
      capacity_ = wanted;
    }
    begin_ = 0;
    end_ = used;
  }

  std::unique_ptr<char[]> storage_;
  std::size_t capacity_ = 0;
  std::size_t begin_ = 0;
  std::size_t end_ = 0;
};

}  // namespace prefork
