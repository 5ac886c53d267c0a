// Per-sample AUM state: for every sample id, its label, the float64 sum of its margins and how
// many margins were added. Partial states over disjoint rows merge; states serialise to bytes.
#pragma once
#include <cstdint>
#include <limits>
#include <map>
#include <string>
#include <vector>

#include "aum/id_index.hpp"
#include "aum/margin.hpp"
#include "aum/string_ids.hpp"

namespace aum {

enum class IdKind : uint8_t { integer = 0, string = 1 };

// A row whose label is kNoLabel takes the label its sample already has (e.g. from a labels table).
constexpr int64_t kNoLabel = std::numeric_limits<int64_t>::min();

struct AddOptions {
  // Epoch of the rows: per row (`epochs`, may be null) or one for the whole batch (`epoch`).
  const int64_t* epochs = nullptr;
  int64_t epoch = 0;
  // Rows with this label (the threshold class) are also tallied per epoch; kNoLabel: none.
  int64_t tally_label = kNoLabel;
  bool skip_nonfinite = false;       // false: a NaN/inf row is an error
  bool allow_label_changes = false;  // true: each row uses its own label (the reference's way)
  int threads = 0;                   // 0: all OpenMP threads
  int32_t source = 0;                // who sent the rows (a file number), named in label conflicts
};

struct AddStats {
  int64_t added = 0;    // margins added
  int64_t skipped = 0;  // rows with NaN/inf logits skipped
};

// Per-epoch summary of the margins: all rows, and the rows of the tallied (threshold) class.
// Shows training progress and when threshold samples start being fitted (memorisation).
struct EpochTally {
  int64_t rows = 0;
  double margin_sum = 0.0;
  int64_t tallied_rows = 0;
  int64_t tallied_fitted = 0;  // tallied rows with margin > 0
  double tallied_margin_sum = 0.0;
};

class Accumulator {
 public:
  Accumulator(int64_t classes, IdKind id_kind);

  // Adds one margin per row. keys are sample ids (or StringIds codes). All-or-nothing: on any
  // error (RowError names the row) the state is left as it was.
  AddStats add(const LogitBlock& block, const int64_t* labels, const int64_t* keys,
               const AddOptions& options);

  // Known labels (from a labels table) for samples that may appear later without a label.
  void set_labels(const int64_t* keys, const int64_t* labels, int64_t n, int32_t source);

  // Adds another partial state (same classes and id kind) into this one.
  void merge(const Accumulator& other, bool allow_label_changes);

  std::string serialize() const;
  static Accumulator deserialize(const char* data, size_t size);

  int64_t classes() const { return classes_; }
  IdKind id_kind() const { return id_kind_; }
  int64_t num_slots() const { return static_cast<int64_t>(keys_.size()); }
  int64_t rows_added() const { return rows_added_; }
  int64_t rows_skipped() const { return rows_skipped_; }
  const std::vector<int64_t>& keys() const { return keys_; }
  const std::vector<int64_t>& labels() const { return labels_; }
  const std::vector<double>& sums() const { return sums_; }
  const std::vector<int64_t>& counts() const { return counts_; }
  const std::map<int64_t, EpochTally>& epoch_tallies() const { return tallies_; }
  StringIds& strings() { return strings_; }
  const StringIds& strings() const { return strings_; }

  std::string describe_key(int64_t key) const;  // "42" or "'cat_17'"

 private:
  int64_t slot_for(int64_t key);

  int64_t classes_;
  IdKind id_kind_;
  IdIndex index_;
  StringIds strings_;
  std::vector<int64_t> keys_;
  std::vector<int64_t> labels_;   // kNoLabel until known
  std::vector<int32_t> sources_;  // where each label came from
  std::vector<double> sums_;
  std::vector<int64_t> counts_;
  std::map<int64_t, EpochTally> tallies_;
  int64_t rows_added_ = 0;
  int64_t rows_skipped_ = 0;
  // Per-batch scratch, kept to avoid reallocating for every batch.
  std::vector<int64_t> row_slots_, row_labels_;
  std::vector<double> row_margins_;
  std::vector<uint8_t> row_finite_;
};

}  // namespace aum
