#include "recur/data/series.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <numbers>
#include <string_view>

#include "recur/core/error.h"

namespace recur::data {

namespace {

bool is_leap(int32_t y) { return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0; }

int32_t days_in_month(int32_t y, int32_t m) {
  static constexpr int32_t kDays[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  return m == 2 && is_leap(y) ? 29 : kDays[m - 1];
}

bool valid_date(int32_t y, int32_t m, int32_t d) {
  return m >= 1 && m <= 12 && d >= 1 && d <= days_in_month(y, m);
}

// Days since 1970-01-01 of a Gregorian date (Howard Hinnant's days_from_civil): consecutive
// calendar days differ by exactly one, which is what the reader checks.
int64_t days_from_civil(int64_t y, int64_t m, int64_t d) {
  y -= m <= 2;
  const int64_t era = (y >= 0 ? y : y - 399) / 400;
  const int64_t yoe = y - era * 400;
  const int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
  const int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097 + doe - 719468;
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t' || s.back() == '\r')) s.remove_suffix(1);
  return s;
}

std::vector<std::string_view> split_commas(std::string_view line) {
  std::vector<std::string_view> out;
  size_t begin = 0;
  for (;;) {
    size_t comma = line.find(',', begin);
    out.push_back(trim(line.substr(begin, comma == std::string_view::npos ? std::string_view::npos : comma - begin)));
    if (comma == std::string_view::npos) return out;
    begin = comma + 1;
  }
}

// Where a cell came from, for error messages.
struct Cell {
  const std::string& path;
  int64_t line;
  std::string_view column;
  std::string_view text;
};

int32_t parse_int(const Cell& c) {
  RECUR_CHECK(!c.text.empty(), "{}:{}: empty cell in column '{}'", c.path, c.line, c.column);
  int32_t v = 0;
  auto [end, ec] = std::from_chars(c.text.data(), c.text.data() + c.text.size(), v);
  RECUR_CHECK(ec == std::errc() && end == c.text.data() + c.text.size(),
              "{}:{}: column '{}' holds '{}', expected an integer", c.path, c.line, c.column, c.text);
  return v;
}

double parse_double(const Cell& c) {
  RECUR_CHECK(!c.text.empty(), "{}:{}: empty cell in column '{}'", c.path, c.line, c.column);
  double v = 0;
  auto [end, ec] = std::from_chars(c.text.data(), c.text.data() + c.text.size(), v);
  RECUR_CHECK(ec == std::errc() && end == c.text.data() + c.text.size() && std::isfinite(v),
              "{}:{}: column '{}' holds '{}', expected a finite number", c.path, c.line, c.column, c.text);
  return v;
}

void check_day_range(const DailySeries& s, const char* what, int64_t first, int64_t last) {
  RECUR_CHECK(first <= last, "{}: empty range [{}, {}]", what, first, last);
  RECUR_CHECK(first >= 0 && last < s.size(), "{}: range [{}, {}] is outside the series of {} days", what, first,
              last, s.size());
}

}  // namespace

bool us_holiday(int32_t year, int32_t month, int32_t day) {
  const int32_t wd = iso_weekday(year, month, day);  // 1 = Monday
  if ((month == 1 && day == 1) || (month == 7 && day == 4) || (month == 12 && (day == 24 || day == 25 || day == 31)))
    return true;
  if (month == 5 && wd == 1 && day + 7 > 31) return true;     // last Monday of May
  if (month == 9 && wd == 1 && day <= 7) return true;         // first Monday of September
  if (month == 11 && wd == 4 && day > 21 && day <= 28) return true;  // fourth Thursday of November
  return false;
}

namespace {

// Writes the feature row of day i; `observed` rows carry z(value), future rows a 0 and the flag.
void day_row(const DailySeries& s, const SeriesNorm& norm, int64_t i, bool observed, float* row) {
  const auto u = static_cast<size_t>(i);
  for (int64_t k = 0; k < kSeriesFeatureDim; ++k) row[k] = 0.0f;
  row[0] = observed ? static_cast<float>((s.value[u] - norm.mean) / norm.std) : 0.0f;
  row[s.weekday[u]] = 1.0f;  // weekday 1..7 lands in columns 1..7
  const double year_len = is_leap(s.year[u]) ? 366.0 : 365.0;
  const double angle = 2.0 * std::numbers::pi * day_of_year(s.year[u], s.month[u], s.day[u]) / year_len;
  row[8] = static_cast<float>(std::sin(angle));
  row[9] = static_cast<float>(std::cos(angle));
  row[10] = observed ? 0.0f : 1.0f;
  row[11] = us_holiday(s.year[u], s.month[u], s.day[u]) ? 1.0f : 0.0f;
}

}  // namespace

int32_t day_of_year(int32_t year, int32_t month, int32_t day) {
  RECUR_CHECK(valid_date(year, month, day), "day_of_year: {}-{}-{} is not a date", year, month, day);
  return static_cast<int32_t>(days_from_civil(year, month, day) - days_from_civil(year, 1, 1));
}

int32_t iso_weekday(int32_t year, int32_t month, int32_t day) {
  RECUR_CHECK(valid_date(year, month, day), "iso_weekday: {}-{}-{} is not a date", year, month, day);
  // 1970-01-01 was a Thursday (ISO 4); the double modulo keeps earlier dates non-negative.
  const int64_t days = days_from_civil(year, month, day);
  return static_cast<int32_t>(((days + 3) % 7 + 7) % 7 + 1);
}

DailySeries read_daily_csv(const std::string& path, const std::string& value_column) {
  std::error_code ec;
  RECUR_CHECK(std::filesystem::is_regular_file(path, ec), "{}: no such file", path);
  std::ifstream in(path, std::ios::binary);
  RECUR_CHECK(in.good(), "{}: cannot open", path);

  std::string line;
  int64_t line_no = 0;
  bool have_header = false;
  while (!have_header && std::getline(in, line)) {
    ++line_no;
    have_header = !trim(line).empty();
  }
  RECUR_CHECK(have_header, "{}: empty file (expected a header line)", path);
  const std::string header_line(trim(line));
  const std::vector<std::string_view> header = split_commas(header_line);
  auto column = [&](std::string_view name) {
    for (size_t k = 0; k < header.size(); ++k)
      if (header[k] == name) return k;
    RECUR_FAIL("{}:{}: no column '{}' in the header [{}]", path, line_no, name, fmt::join(header, ", "));
  };
  const std::string_view names[5] = {"year", "month", "date_of_month", "day_of_week", value_column};
  size_t idx[5];
  for (int k = 0; k < 5; ++k) idx[k] = column(names[k]);

  DailySeries s;
  int64_t prev_days = 0;
  while (std::getline(in, line)) {
    ++line_no;
    if (trim(line).empty()) continue;
    const std::vector<std::string_view> f = split_commas(line);
    RECUR_CHECK(f.size() == header.size(), "{}:{}: {} fields, the header has {}", path, line_no, f.size(),
                header.size());
    int32_t date[4];
    for (int k = 0; k < 4; ++k) date[k] = parse_int(Cell{path, line_no, names[k], f[idx[k]]});
    const double v = parse_double(Cell{path, line_no, names[4], f[idx[4]]});
    const auto [y, m, d, wd] = date;
    RECUR_CHECK(valid_date(y, m, d), "{}:{}: {}-{}-{} is not a date", path, line_no, y, m, d);
    RECUR_CHECK(wd == iso_weekday(y, m, d), "{}:{}: day_of_week is {} but {}-{:02}-{:02} is weekday {} (1 = Monday)",
                path, line_no, wd, y, m, d, iso_weekday(y, m, d));
    const int64_t days = days_from_civil(y, m, d);
    if (!s.value.empty()) {
      const auto b = s.value.size() - 1;
      RECUR_CHECK(days == prev_days + 1, "{}:{}: dates not consecutive: {}-{:02}-{:02} follows {}-{:02}-{:02}", path,
                  line_no, y, m, d, s.year[b], s.month[b], s.day[b]);
    }
    prev_days = days;
    s.year.push_back(y);
    s.month.push_back(m);
    s.day.push_back(d);
    s.weekday.push_back(wd);
    s.value.push_back(v);
  }
  RECUR_CHECK(!in.bad(), "{}:{}: read error", path, line_no);
  RECUR_CHECK(!s.value.empty(), "{}:{}: no data rows after the header", path, line_no);
  return s;
}

SeriesNorm fit_norm(const DailySeries& s, int64_t first_day, int64_t last_day) {
  check_day_range(s, "fit_norm", first_day, last_day);
  const auto n = static_cast<double>(last_day - first_day + 1);
  double sum = 0;
  for (int64_t i = first_day; i <= last_day; ++i) sum += s.value[static_cast<size_t>(i)];
  const double mean = sum / n;
  // Two passes: the births values are ~1e4, where sum-of-squares minus squared mean loses digits.
  double ss = 0;
  for (int64_t i = first_day; i <= last_day; ++i) {
    const double dv = s.value[static_cast<size_t>(i)] - mean;
    ss += dv * dv;
  }
  const double sd = std::sqrt(ss / n);
  RECUR_CHECK(sd > 0, "fit_norm: the values of days [{}, {}] are constant ({}), cannot scale", first_day, last_day,
              mean);
  return SeriesNorm{mean, sd};
}

int64_t first_day_of_year(const DailySeries& s, int32_t year) {
  for (int64_t i = 0; i < s.size(); ++i) {
    const auto u = static_cast<size_t>(i);
    if (s.year[u] == year && s.month[u] == 1 && s.day[u] == 1) return i;
  }
  if (s.value.empty()) RECUR_FAIL("first_day_of_year: {}-01-01 is not in the (empty) series", year);
  RECUR_FAIL("first_day_of_year: {}-01-01 is not in the series ({}-{:02}-{:02} .. {}-{:02}-{:02})", year,
             s.year.front(), s.month.front(), s.day.front(), s.year.back(), s.month.back(), s.day.back());
}

SeriesWindows make_windows(const DailySeries& s, const WindowOptions& o, const SeriesNorm& norm,
                           int64_t first_target_day, int64_t last_target_day) {
  const int64_t n = s.size();
  RECUR_CHECK(o.window >= 1 && o.window <= n, "make_windows: window is {}, must be in [1, {}] (the series length)",
              o.window, n);
  RECUR_CHECK(o.horizon >= 1, "make_windows: horizon is {}, must be >= 1", o.horizon);
  RECUR_CHECK(o.stride >= 1, "make_windows: stride is {}, must be >= 1", o.stride);
  RECUR_CHECK(std::isfinite(norm.mean) && std::isfinite(norm.std) && norm.std > 0,
              "make_windows: norm mean {} std {}, need finite values and std > 0", norm.mean, norm.std);
  check_day_range(s, "make_windows", first_target_day, last_target_day);

  // e must leave `window` observed days, a week before the first target day, and its first
  // target day inside the range; the last target day e + horizon must not pass the range.
  const int64_t first_end = std::max({o.window - 1, int64_t{6}, first_target_day - 1});
  const int64_t last_end = last_target_day - o.horizon;
  RECUR_CHECK(first_end <= last_end,
              "make_windows: no window of {} days with horizon {} has all its target days in [{}, {}] "
              "(series of {} days)",
              o.window, o.horizon, first_target_day, last_target_day, n);

  SeriesWindows out;
  out.data.feature_dim = kSeriesFeatureDim;
  const int64_t L = o.window + o.horizon;
  for (int64_t e = first_end; e <= last_end; e += o.stride) {
    Tensor features({L, kSeriesFeatureDim});
    float* f = features.f32();
    for (int64_t t = 0; t < L; ++t) {
      const int64_t day = e - o.window + 1 + t;
      day_row(s, norm, day, t < o.window, f + t * kSeriesFeatureDim);
    }
    Tensor target({o.horizon});
    std::vector<double> naive, actual;
    for (int64_t k = 0; k < o.horizon; ++k) {
      const auto d = static_cast<size_t>(e + 1 + k);
      target.f32()[k] = static_cast<float>((s.value[d] - norm.mean) / norm.std);
      naive.push_back(s.value[d - 7]);
      actual.push_back(s.value[d]);
    }
    out.data.push_back(Example{features, -1, target});
    out.naive.push_back(std::move(naive));
    out.actual.push_back(std::move(actual));
    out.end_day.push_back(e);
  }
  return out;
}

DailySeries consecutive_days(int32_t year, int32_t month, int32_t day, const std::vector<double>& values) {
  RECUR_CHECK(valid_date(year, month, day), "consecutive_days: {}-{}-{} is not a date", year, month, day);
  DailySeries s;
  for (double v : values) {
    s.year.push_back(year), s.month.push_back(month), s.day.push_back(day);
    s.weekday.push_back(iso_weekday(year, month, day));
    s.value.push_back(v);
    if (++day > days_in_month(year, month)) {
      day = 1;
      if (++month > 12) month = 1, ++year;
    }
  }
  return s;
}

}  // namespace recur::data
