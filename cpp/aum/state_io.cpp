// Accumulator <-> bytes. Little-endian, versioned; every length is checked before it is used, so
// a truncated or hostile state is an error, never an out-of-bounds read.
//
//   "AUMSTATE" u32 version u8 id_kind u8[3] 0  i64 classes  i64 slots  i64 rows_added
//   i64 rows_skipped  i64 keys[slots]  i64 labels[slots]  f64 sums[slots]  i64 counts[slots]
//   i64 epochs  {i64 epoch i64 rows f64 margin_sum i64 tallied_rows i64 tallied_fitted
//   f64 tallied_margin_sum}[epochs]
//   string ids only: i64 offsets[slots + 1] (into the bytes that follow)  char bytes[]
#include <cstring>
#include <stdexcept>
#include <string>

#include "aum/accumulator.hpp"
#include "aum/errors.hpp"

namespace aum {
namespace {

constexpr char kMagic[8] = {'A', 'U', 'M', 'S', 'T', 'A', 'T', 'E'};
constexpr uint32_t kVersion = 1;

template <typename T>
void put(std::string& out, const T& value) {
  out.append(reinterpret_cast<const char*>(&value), sizeof(T));
}

template <typename T>
void put_all(std::string& out, const std::vector<T>& values) {
  out.append(reinterpret_cast<const char*>(values.data()), values.size() * sizeof(T));
}

class Reader {
 public:
  Reader(const char* data, size_t size) : data_(data), size_(size) {}
  void take(void* into, size_t bytes) {
    if (bytes > size_ - pos_) throw std::invalid_argument("state is truncated or corrupt");
    std::memcpy(into, data_ + pos_, bytes);
    pos_ += bytes;
  }
  template <typename T>
  T get() {
    T value;
    take(&value, sizeof(T));
    return value;
  }
  template <typename T>
  std::vector<T> get_all(int64_t n) {
    if (n < 0 || static_cast<uint64_t>(n) > (size_ - pos_) / sizeof(T))
      throw std::invalid_argument("state is truncated or corrupt");
    std::vector<T> values(static_cast<size_t>(n));
    take(values.data(), values.size() * sizeof(T));
    return values;
  }
  size_t left() const { return size_ - pos_; }

 private:
  const char* data_;
  size_t size_;
  size_t pos_ = 0;
};

}  // namespace

std::string Accumulator::serialize() const {
  std::string out;
  out.reserve(64 + order_.size() * 40 + tallies_.size() * 48 + strings_.bytes());
  out.append(kMagic, sizeof(kMagic));
  put(out, kVersion);
  put(out, static_cast<uint32_t>(id_kind_));
  put(out, classes_);
  put(out, num_slots());
  put(out, rows_added_);
  put(out, rows_skipped_);
  if (id_kind_ == IdKind::integer)
    put_all(out, order_);
  else
    put_all(out, std::vector<int64_t>(order_.size(), 0));  // keys are rebuilt from the strings
  std::vector<int64_t> labels(order_.size()), counts(order_.size());
  std::vector<double> sums(order_.size());
  gather(labels.data(), sums.data(), counts.data());
  put_all(out, labels);
  put_all(out, sums);
  put_all(out, counts);
  put(out, static_cast<int64_t>(tallies_.size()));
  for (const auto& [epoch, t] : tallies_) {
    put(out, epoch);
    put(out, t.rows);
    put(out, t.margin_sum);
    put(out, t.tallied_rows);
    put(out, t.tallied_fitted);
    put(out, t.tallied_margin_sum);
  }
  if (id_kind_ == IdKind::string) {  // keys are rebuilt from the strings
    int64_t offset = 0;
    put(out, offset);
    for (int64_t key : order_) {
      offset += static_cast<int64_t>(strings_.at(key).size());
      put(out, offset);
    }
    for (int64_t key : order_) out.append(strings_.at(key).data(), strings_.at(key).size());
  }
  return out;
}

Accumulator Accumulator::deserialize(const char* data, size_t size) {
  Reader in(data, size);
  char magic[8];
  in.take(magic, sizeof(magic));
  if (std::memcmp(magic, kMagic, sizeof(magic)) != 0)
    throw std::invalid_argument("not an aum-score state (bad magic bytes)");
  const auto version = in.get<uint32_t>();
  if (version != kVersion)
    throw std::invalid_argument("state format version " + std::to_string(version) +
                                " is not supported (this build reads version " +
                                std::to_string(kVersion) + ")");
  const auto kind = in.get<uint32_t>();
  if (kind > 1) throw std::invalid_argument("state has an unknown id kind");
  const auto classes = in.get<int64_t>();
  const auto slots = in.get<int64_t>();
  Accumulator state(classes, static_cast<IdKind>(kind));
  state.rows_added_ = in.get<int64_t>();
  state.rows_skipped_ = in.get<int64_t>();
  auto keys = in.get_all<int64_t>(slots);
  auto labels = in.get_all<int64_t>(slots);
  auto sums = in.get_all<double>(slots);
  auto counts = in.get_all<int64_t>(slots);
  const auto epochs = in.get<int64_t>();
  if (epochs < 0 || static_cast<uint64_t>(epochs) > in.left() / 48)
    throw std::invalid_argument("state is truncated or corrupt");
  for (int64_t e = 0; e < epochs; ++e) {
    EpochTally& t = state.tallies_[in.get<int64_t>()];
    t.rows = in.get<int64_t>();
    t.margin_sum = in.get<double>();
    t.tallied_rows = in.get<int64_t>();
    t.tallied_fitted = in.get<int64_t>();
    t.tallied_margin_sum = in.get<double>();
  }
  if (state.id_kind_ == IdKind::string) {
    auto offsets = in.get_all<int64_t>(slots + 1);
    const std::string bytes(data + (size - in.left()), in.left());
    for (int64_t s = 0; s < slots; ++s) {
      const int64_t b = offsets[s], e = offsets[s + 1];
      if (b < 0 || e < b || e > static_cast<int64_t>(bytes.size()))
        throw std::invalid_argument("state is truncated or corrupt");
      const std::string_view id = std::string_view(bytes).substr(b, e - b);
      if (!valid_utf8(id)) throw std::invalid_argument("state is corrupt: a sample id is not UTF-8");
      keys[s] = state.strings_.intern_one(id);
    }
  } else if (in.left() != 0) {
    throw std::invalid_argument("state has trailing bytes");
  }
  state.order_.reserve(static_cast<size_t>(slots));
  for (int64_t s = 0; s < slots; ++s) {
    if ((labels[s] != kNoLabel && (labels[s] < 0 || labels[s] >= classes)) || counts[s] < 0 ||
        counts[s] > kMaxCount)
      throw std::invalid_argument("state is corrupt (label or count out of range)");
    Slot* slot = state.table_.find_or_add(keys[s]);
    if (!state.table_.activate(slot))
      throw std::invalid_argument("state is corrupt (duplicate sample id)");
    state.order_.push_back(keys[s]);
    slot->label = labels[s] == kNoLabel ? kNoLabel32 : static_cast<int32_t>(labels[s]);
    state.table_.set_source(slot, kStateSource);  // the first source of a new state
    slot->sum = sums[s];
    slot->count = static_cast<int32_t>(counts[s]);
  }
  return state;
}

}  // namespace aum
