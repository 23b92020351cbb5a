// decode_node/reservation_lease.h
//
// ReservationLease: the one owner of a decode reservation's room. Whoever holds the lease frees
// the room, exactly once: explicitly with Release() (before writing a terminal event, so whoever
// sees the event may reserve again at once) or by dropping it. The decode call holds it until it
// hands the request to the engine, which moves it into the job; a job that never joins the batch
// still drops it. Move-only; not thread-safe (one owner at a time).
#pragma once

#include <cstdint>
#include <functional>
#include <utility>

namespace tandem::decode {

class ReservationLease {
 public:
  using ReleaseFn = std::function<void(uint64_t reservation_id)>;

  ReservationLease() = default;  // holds nothing
  ReservationLease(uint64_t id, ReleaseFn release) : id_(id), release_(std::move(release)) {}
  ReservationLease(ReservationLease&& other) noexcept
      : id_(other.id_), release_(std::exchange(other.release_, nullptr)) {}
  ReservationLease& operator=(ReservationLease&& other) noexcept {
    if (this != &other) {
      Release();
      id_ = other.id_;
      release_ = std::exchange(other.release_, nullptr);
    }
    return *this;
  }
  ReservationLease(const ReservationLease&) = delete;
  ReservationLease& operator=(const ReservationLease&) = delete;
  ~ReservationLease() { Release(); }

  // Frees the room now; later calls do nothing.
  void Release() {
    if (release_ == nullptr) return;
    ReleaseFn release = std::exchange(release_, nullptr);
    release(id_);
  }
  uint64_t id() const { return id_; }
  bool held() const { return release_ != nullptr; }

 private:
  uint64_t id_ = 0;
  ReleaseFn release_;
};

}  // namespace tandem::decode
