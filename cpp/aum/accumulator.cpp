#include "aum/accumulator.hpp"

#include <stdexcept>
#include <utility>

#include "aum/errors.hpp"

namespace aum {

Accumulator::Accumulator(int64_t classes, IdKind id_kind) : classes_(classes), id_kind_(id_kind) {
  if (classes < 2)
    throw std::invalid_argument("need at least 2 classes, got " + std::to_string(classes));
}

std::string Accumulator::describe_key(int64_t key) const {
  if (id_kind_ == IdKind::string) return "'" + strings_.at(key) + "'";
  return std::to_string(key);
}

int64_t Accumulator::slot_for(int64_t key) {
  bool inserted = false;
  const int64_t slot = index_.find_or_insert(key, num_slots(), inserted);
  if (inserted) {
    keys_.push_back(key);
    labels_.push_back(kNoLabel);
    sources_.push_back(kNoSource);
    sums_.push_back(0.0);
    counts_.push_back(0);
  }
  return slot;
}

static std::string label_conflict(const std::string& sample, int64_t here, int64_t before) {
  return "sample " + sample + " has label " + std::to_string(here) + " here but label " +
         std::to_string(before) + " before";
}

AddStats Accumulator::add(const LogitBlock& block, const int64_t* labels, const int64_t* keys,
                          const AddOptions& options) {
  if (block.classes != classes_)
    throw std::invalid_argument("logits have " + std::to_string(block.classes) +
                                " classes, the state has " + std::to_string(classes_));
  const int64_t rows = block.rows;
  for (int64_t r = 0; r < rows; ++r) {
    if (labels[r] != kNoLabel && (labels[r] < 0 || labels[r] >= classes_))
      throw RowError("label " + std::to_string(labels[r]) + " is outside [0, " +
                         std::to_string(classes_) + ")",
                     r);
  }
  // Resolve each row's slot and label. Labels changed here are logged so an error can undo them.
  row_slots_.resize(rows);
  row_labels_.resize(rows);
  std::vector<std::pair<int64_t, std::pair<int64_t, int32_t>>> undo;
  auto fail = [&](const std::string& what, int64_t row, int32_t source) {
    for (auto it = undo.rbegin(); it != undo.rend(); ++it) {
      labels_[it->first] = it->second.first;
      sources_[it->first] = it->second.second;
    }
    throw RowError(what, row, source);
  };
  index_.reserve(keys_.size() + static_cast<size_t>(rows));
  for (int64_t r = 0; r < rows; ++r) {
    const int64_t slot = slot_for(keys[r]);
    row_slots_[r] = slot;
    const int64_t known = labels_[slot];
    int64_t label = labels[r];
    if (label == kNoLabel) {
      if (known == kNoLabel) fail("sample " + describe_key(keys[r]) + " has no label", r, kNoSource);
      label = known;
    } else if (label != known) {
      if (known != kNoLabel && !options.allow_label_changes)
        fail(label_conflict(describe_key(keys[r]), label, known), r, sources_[slot]);
      undo.push_back({slot, {known, sources_[slot]}});
      labels_[slot] = label;
      sources_[slot] = options.source;
    }
    row_labels_[r] = label;
  }
  row_margins_.resize(rows);
  row_finite_.resize(rows);
  compute_margins(block, row_labels_.data(), row_margins_.data(), row_finite_.data(),
                  options.threads);
  AddStats stats;
  if (!options.skip_nonfinite) {
    for (int64_t r = 0; r < rows; ++r)
      if (!row_finite_[r]) fail("logits are NaN or infinite", r, kNoSource);
  }
  // Serial scatter in row order: sums equal a sequential float64 sum, as in the reference.
  int64_t tally_epoch = options.epochs && rows ? options.epochs[0] : options.epoch;
  EpochTally* tally = rows ? &tallies_[tally_epoch] : nullptr;
  for (int64_t r = 0; r < rows; ++r) {
    if (!row_finite_[r]) {
      ++stats.skipped;
      continue;
    }
    const double margin = row_margins_[r];
    sums_[row_slots_[r]] += margin;
    counts_[row_slots_[r]] += 1;
    ++stats.added;
    if (options.epochs && options.epochs[r] != tally_epoch) {
      tally_epoch = options.epochs[r];
      tally = &tallies_[tally_epoch];
    }
    tally->rows += 1;
    tally->margin_sum += margin;
    if (row_labels_[r] == options.tally_label) {
      tally->tallied_rows += 1;
      tally->tallied_fitted += margin > 0.0 ? 1 : 0;
      tally->tallied_margin_sum += margin;
    }
  }
  rows_added_ += stats.added;
  rows_skipped_ += stats.skipped;
  return stats;
}

void Accumulator::set_labels(const int64_t* keys, const int64_t* labels, int64_t n,
                             int32_t source) {
  for (int64_t r = 0; r < n; ++r) {
    if (labels[r] < 0 || labels[r] >= classes_)
      throw RowError("label " + std::to_string(labels[r]) + " is outside [0, " +
                         std::to_string(classes_) + ")",
                     r);
  }
  index_.reserve(keys_.size() + static_cast<size_t>(n));
  for (int64_t r = 0; r < n; ++r) {
    const int64_t slot = slot_for(keys[r]);
    if (labels_[slot] != kNoLabel && labels_[slot] != labels[r])
      throw RowError(label_conflict(describe_key(keys[r]), labels[r], labels_[slot]), r,
                     sources_[slot]);
    labels_[slot] = labels[r];
    sources_[slot] = source;
  }
}

void Accumulator::merge(const Accumulator& other, bool allow_label_changes) {
  if (other.classes_ != classes_ || other.id_kind_ != id_kind_)
    throw std::invalid_argument("cannot merge states with different classes or id kinds");
  if (&other == this) throw std::invalid_argument("cannot merge a state into itself");
  index_.reserve(keys_.size() + other.keys_.size());
  // Check labels first so a conflict leaves this state untouched.
  for (int64_t s = 0; s < other.num_slots(); ++s) {
    const int64_t key = id_kind_ == IdKind::string ? strings_.intern_one(other.strings_.at(other.keys_[s]))
                                                   : other.keys_[s];
    const int64_t mine = index_.find(key);
    if (mine < 0 || allow_label_changes) continue;
    const int64_t a = labels_[mine], b = other.labels_[s];
    if (a != kNoLabel && b != kNoLabel && a != b)
      throw std::invalid_argument(label_conflict(describe_key(key), b, a) + " (merging states)");
  }
  for (int64_t s = 0; s < other.num_slots(); ++s) {
    const int64_t key = id_kind_ == IdKind::string ? strings_.intern_one(other.strings_.at(other.keys_[s]))
                                                   : other.keys_[s];
    const int64_t slot = slot_for(key);
    if (other.labels_[s] != kNoLabel && (labels_[slot] == kNoLabel || allow_label_changes)) {
      labels_[slot] = other.labels_[s];
      sources_[slot] = kStateSource;
    }
    sums_[slot] += other.sums_[s];
    counts_[slot] += other.counts_[s];
  }
  for (const auto& [epoch, theirs] : other.tallies_) {
    EpochTally& mine = tallies_[epoch];
    mine.rows += theirs.rows;
    mine.margin_sum += theirs.margin_sum;
    mine.tallied_rows += theirs.tallied_rows;
    mine.tallied_fitted += theirs.tallied_fitted;
    mine.tallied_margin_sum += theirs.tallied_margin_sum;
  }
  rows_added_ += other.rows_added_;
  rows_skipped_ += other.rows_skipped_;
}

}  // namespace aum
