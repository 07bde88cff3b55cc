// Small building blocks shared by the addon's translation units: an errno-carrying result
// (so the syscall layer never touches N-API) and a move-only owner for file descriptors
// (so every error path closes what it opened).
#pragma once

#include <unistd.h>

#include <string>
#include <utility>

namespace meshd {

// Outcome of a syscall sequence. err == 0 means success; otherwise syscall names the call that
// failed and detail what it was about (an option name, a path or an "address:port").
struct SysError {
  int err = 0;
  std::string syscall;
  std::string detail;

  explicit operator bool() const { return err != 0; }
};

inline SysError Ok() { return SysError{}; }

// Call with the errno captured right after the failing call, before anything can clobber it.
inline SysError Fail(int err, std::string syscall, std::string detail = "") {
  return SysError{err, std::move(syscall), std::move(detail)};
}

class UniqueFd {
 public:
  UniqueFd() = default;
  explicit UniqueFd(int fd) : fd_(fd) {}
  ~UniqueFd() { Reset(); }
  UniqueFd(const UniqueFd&) = delete;
  UniqueFd& operator=(const UniqueFd&) = delete;
  UniqueFd(UniqueFd&& other) noexcept : fd_(other.Release()) {}
  UniqueFd& operator=(UniqueFd&& other) noexcept {
    if (this != &other) {
      Reset();
      fd_ = other.Release();
    }
    return *this;
  }

  int Get() const { return fd_; }
  bool Valid() const { return fd_ >= 0; }

  // Hands ownership to the caller (e.g. to Node, which closes the fd with its handle).
  int Release() { return std::exchange(fd_, -1); }

  void Reset() {
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
  }

 private:
  int fd_ = -1;
};

}  // namespace meshd
