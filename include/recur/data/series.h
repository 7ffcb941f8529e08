#pragma once
/// \file Daily time series (the US-births data): a strict CSV reader, train-period normalisation,
/// and sliding windows that turn the series into a sequence-to-vector forecasting dataset with a
/// seasonal-naive baseline alongside.
#include <cstdint>
#include <string>
#include <vector>

#include "recur/data/dataset.h"

namespace recur::data {

/// One value per calendar day, days consecutive. weekday is 1..7 = Monday..Sunday (ISO).
struct DailySeries {
  std::vector<int32_t> year, month, day, weekday;
  std::vector<double> value;
  int64_t size() const { return static_cast<int64_t>(value.size()); }
};

/// Reads a comma-separated file with a header row. The date comes from the columns year, month,
/// date_of_month and day_of_week (1..7 = Monday..Sunday); `value_column` names the numeric column
/// to read (e.g. "births"). Other columns are ignored, blank lines are skipped, quoting is not
/// supported. Throws recur::Error naming path:line and the problem for: a missing or empty file, a
/// header without one of the columns (the header is listed), a row with the wrong number of fields,
/// an empty or non-numeric cell (the column is named), an invalid date, a day_of_week that
/// disagrees with the calendar, dates that are not consecutive days, and a file with no rows.
DailySeries read_daily_csv(const std::string& path, const std::string& value_column);

/// 0-based day of the year (Jan 1 is 0) of a valid Gregorian date.
int32_t day_of_year(int32_t year, int32_t month, int32_t day);
/// ISO weekday 1..7 = Monday..Sunday of a valid Gregorian date.
int32_t iso_weekday(int32_t year, int32_t month, int32_t day);

struct WindowOptions {
  int64_t window = 56;  ///< observed days per example
  int64_t horizon = 7;  ///< days forecast per example (the target width K)
  int64_t stride = 1;   ///< days between the ends of consecutive windows
};

/// z(v) = (v - mean) / std.
struct SeriesNorm {
  double mean = 0, std = 1;
};

/// Width of a feature row: [z(value), weekday one-hot (7), sin, cos of the day of year, future,
/// US holiday].
inline constexpr int64_t kSeriesFeatureDim = 12;

/// True on the US holidays that move daily births most: New Year's Day, Memorial Day (last Monday
/// of May), Independence Day, Labor Day (first Monday of September), Thanksgiving (fourth
/// Thursday of November), Christmas Eve and Day, New Year's Eve.
bool us_holiday(int32_t year, int32_t month, int32_t day);

/// Forecasting examples plus what evaluation in original units needs; all vectors run parallel
/// to data.examples.
struct SeriesWindows {
  /// Regression examples: features (window + horizon, 11) float32, target (horizon) float32.
  SequenceDataset data;
  std::vector<std::vector<double>> naive;   ///< seasonal-naive forecast value[d - 7] per target day d
  std::vector<std::vector<double>> actual;  ///< value[d] per target day d (original units)
  std::vector<int64_t> end_day;             ///< e: index of the last observed day
};

/// Cuts windows ending at day e (inclusive) for every e, `stride` apart, whose target days
/// e+1..e+horizon all fall in [first_target_day, last_target_day] (indices into s), starting at
/// the first e that fits. An example's feature rows are:
///  - steps 0..window-1, days e-window+1..e (observed): [z(value), weekday one-hot, sin, cos, 0];
///  - steps window..window+horizon-1, days e+1..e+horizon (future): [0, weekday one-hot, sin, cos,
///    1], so the model sees the calendar of the days it forecasts but none of their values.
/// sin/cos are of 2*pi*day_of_year/days_in_year. target[k] = z(value[e+1+k]). The seasonal-naive
/// forecast needs the day a week earlier, so only e >= 6 (as well as e >= window-1) is used.
/// Throws recur::Error, naming the values, for window < 1 or longer than the series, horizon < 1,
/// stride < 1, a range outside the series or empty, and a range that holds no window.
SeriesWindows make_windows(const DailySeries& s, const WindowOptions& o, const SeriesNorm& norm,
                           int64_t first_target_day, int64_t last_target_day);

/// Mean and (population) standard deviation of the values of days [first_day, last_day] only, so
/// normalising with the training period leaks nothing from later days. Error if the range is
/// empty, outside the series, or constant.
SeriesNorm fit_norm(const DailySeries& s, int64_t first_day, int64_t last_day);

/// Index of January 1 of `year` in s; recur::Error if the series does not contain that day.
int64_t first_day_of_year(const DailySeries& s, int32_t year);

/// Consecutive days from year-month-day on, one per value, with their weekdays: how a forecast
/// request (a start date and the observed values) becomes a series. Error on an invalid date.
DailySeries consecutive_days(int32_t year, int32_t month, int32_t day, const std::vector<double>& values);

}  // namespace recur::data
