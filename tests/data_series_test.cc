// Daily series: the strict CSV reader on small files written here (and each way a file can be
// wrong), the calendar features, forecasting windows of a synthetic series, train-period
// normalisation, and the real US-births data when it is on the machine.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <numbers>

#include "recur/core/error.h"
#include "recur/data/series.h"

namespace recur::data {
namespace {

namespace fs = std::filesystem;

constexpr const char* kHeader = "year,month,date_of_month,day_of_week,births\n";

class DataSeriesCsv : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() /
           ("recur_series_" + std::to_string(getpid()) + "_" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }

  std::string write(const std::string& name, const std::string& text) {
    std::string path = (dir_ / name).string();
    std::ofstream(path, std::ios::binary) << text;
    return path;
  }

  // The message of the recur::Error that reading `text` throws ("" if none).
  std::string error_of(const std::string& text, const std::string& column = "births") {
    try {
      read_daily_csv(write("bad.csv", text), column);
    } catch (const Error& e) {
      return e.what();
    }
    return "";
  }

  fs::path dir_;
};

TEST_F(DataSeriesCsv, ParsesRowsAndSkipsOtherColumnsAndBlankLines) {
  // 2000-02-28 was a Monday; the leap day follows. CRLF endings and an extra column.
  std::string path = write("ok.csv",
                           "note,year,month,date_of_month,day_of_week,births\r\n"
                           "a,2000,2,28,1,10.5\r\n"
                           "b, 2000 ,2,29,2,11\r\n"
                           "\r\n"
                           "c,2000,3,1,3,-4e1\r\n");
  DailySeries s = read_daily_csv(path, "births");
  ASSERT_EQ(s.size(), 3);
  EXPECT_EQ(s.year, (std::vector<int32_t>{2000, 2000, 2000}));
  EXPECT_EQ(s.month, (std::vector<int32_t>{2, 2, 3}));
  EXPECT_EQ(s.day, (std::vector<int32_t>{28, 29, 1}));
  EXPECT_EQ(s.weekday, (std::vector<int32_t>{1, 2, 3}));
  EXPECT_EQ(s.value, (std::vector<double>{10.5, 11, -40}));
}

TEST_F(DataSeriesCsv, MissingAndEmptyFiles) {
  std::string missing = (dir_ / "nope.csv").string();
  try {
    read_daily_csv(missing, "births");
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find(missing + ": no such file"), std::string::npos) << e.what();
  }
  EXPECT_NE(error_of("").find("empty file"), std::string::npos);
  EXPECT_NE(error_of("\n\n").find("empty file"), std::string::npos);
  EXPECT_NE(error_of(kHeader).find("bad.csv:1: no data rows"), std::string::npos) << error_of(kHeader);
}

TEST_F(DataSeriesCsv, MissingColumnListsTheHeader) {
  std::string msg = error_of("year,month,date_of_month,day_of_week,count\n1969,1,1,3,5\n");
  EXPECT_NE(msg.find("bad.csv:1: no column 'births'"), std::string::npos) << msg;
  EXPECT_NE(msg.find("[year, month, date_of_month, day_of_week, count]"), std::string::npos) << msg;
  msg = error_of("year,month,day_of_week,births\n");
  EXPECT_NE(msg.find("no column 'date_of_month'"), std::string::npos) << msg;
}

TEST_F(DataSeriesCsv, BadRowsNameLineAndColumn) {
  const std::string ok = std::string(kHeader) + "1969,1,1,3,8486\n";
  std::string msg = error_of(ok + "1969,1,2,4\n");
  EXPECT_NE(msg.find("bad.csv:3: 4 fields, the header has 5"), std::string::npos) << msg;
  msg = error_of(ok + "1969,1,2,4,9002,7\n");
  EXPECT_NE(msg.find("bad.csv:3: 6 fields"), std::string::npos) << msg;
  msg = error_of(ok + "1969,1,2,4,lots\n");
  EXPECT_NE(msg.find("bad.csv:3: column 'births' holds 'lots'"), std::string::npos) << msg;
  msg = error_of(ok + "1969,1,2,4,12x\n");
  EXPECT_NE(msg.find("column 'births' holds '12x'"), std::string::npos) << msg;
  msg = error_of(ok + "1969,Jan,2,4,9002\n");
  EXPECT_NE(msg.find("bad.csv:3: column 'month' holds 'Jan'"), std::string::npos) << msg;
  msg = error_of(ok + "1969,1,2,4,\n");
  EXPECT_NE(msg.find("bad.csv:3: empty cell in column 'births'"), std::string::npos) << msg;
  msg = error_of(ok + "1969,1,,4,9002\n");
  EXPECT_NE(msg.find("bad.csv:3: empty cell in column 'date_of_month'"), std::string::npos) << msg;
}

TEST_F(DataSeriesCsv, DatesMustBeRealConsecutiveAndMatchTheWeekday) {
  const std::string ok = std::string(kHeader) + "1969,1,1,3,8486\n";
  std::string msg = error_of(ok + "1969,1,3,5,9002\n");  // a day skipped
  EXPECT_NE(msg.find("bad.csv:3: dates not consecutive: 1969-01-03 follows 1969-01-01"), std::string::npos) << msg;
  msg = error_of(ok + "1969,1,1,3,9002\n");  // a day repeated
  EXPECT_NE(msg.find("bad.csv:3: dates not consecutive"), std::string::npos) << msg;
  msg = error_of(std::string(kHeader) + "1969,1,1,1,8486\n");  // the file's weekday is checked
  EXPECT_NE(msg.find("bad.csv:2: day_of_week is 1 but 1969-01-01 is weekday 3"), std::string::npos) << msg;
  msg = error_of(std::string(kHeader) + "1969,2,29,6,8486\n");  // 1969 was not a leap year
  EXPECT_NE(msg.find("bad.csv:2: 1969-2-29 is not a date"), std::string::npos) << msg;
}

TEST(DataSeriesCalendar, WeekdayAndDayOfYear) {
  EXPECT_EQ(iso_weekday(1969, 1, 1), 3);  // Wednesday
  EXPECT_EQ(iso_weekday(1970, 1, 1), 4);  // Thursday
  EXPECT_EQ(iso_weekday(1988, 12, 31), 6);  // Saturday
  EXPECT_EQ(iso_weekday(2024, 1, 1), 1);
  EXPECT_EQ(iso_weekday(2000, 2, 29), 2);
  EXPECT_EQ(iso_weekday(1900, 3, 4), 7);
  EXPECT_EQ(day_of_year(1969, 1, 1), 0);
  EXPECT_EQ(day_of_year(1969, 12, 31), 364);
  EXPECT_EQ(day_of_year(1988, 12, 31), 365);
  EXPECT_EQ(day_of_year(2024, 3, 1), 60);
  EXPECT_EQ(day_of_year(2023, 3, 1), 59);
  EXPECT_THROW(day_of_year(2023, 13, 1), Error);
  EXPECT_THROW(iso_weekday(2023, 4, 31), Error);
}

// n consecutive days from 2024-01-01 (a Monday, in a leap year), value_i = 10 i + (i mod 7).
DailySeries synthetic(int64_t n) {
  DailySeries s;
  int32_t y = 2024, m = 1, d = 1;
  for (int64_t i = 0; i < n; ++i) {
    s.year.push_back(y);
    s.month.push_back(m);
    s.day.push_back(d);
    s.weekday.push_back(iso_weekday(y, m, d));
    s.value.push_back(10.0 * static_cast<double>(i) + static_cast<double>(i % 7));
    const int32_t month_len = m == 2 ? 29 : (m == 4 || m == 6 || m == 9 || m == 11) ? 30 : 31;
    if (++d > month_len) {
      d = 1;
      if (++m > 12) {
        m = 1;
        ++y;
      }
    }
  }
  return s;
}

TEST(DataSeriesWindows, CountAndContents) {
  DailySeries s = synthetic(120);
  const SeriesNorm norm{50.0, 10.0};
  const WindowOptions o{8, 3, 2};
  SeriesWindows w = make_windows(s, o, norm, 0, 39);
  // Ends e = 7, 9, ..., 35: e >= window-1 and e + horizon <= 39.
  ASSERT_EQ(w.data.size(), 15);
  ASSERT_EQ(w.naive.size(), 15u);
  ASSERT_EQ(w.actual.size(), 15u);
  ASSERT_EQ(w.end_day.size(), 15u);
  EXPECT_EQ(w.data.feature_dim, kSeriesFeatureDim);
  EXPECT_EQ(w.data.num_classes, 0);
  for (int64_t j = 0; j < w.data.size(); ++j) {
    const int64_t e = 7 + 2 * j;
    EXPECT_EQ(w.end_day[static_cast<size_t>(j)], e);
    const Example& ex = w.data[j];
    ASSERT_EQ(ex.features.shape(), (Shape{11, kSeriesFeatureDim}));
    ASSERT_EQ(ex.target.shape(), (Shape{3}));
    const float* f = ex.features.f32();
    for (int64_t t = 0; t < 11; ++t) {
      const auto day = static_cast<size_t>(e - 7 + t);
      const float* row = f + t * kSeriesFeatureDim;
      const bool future = t >= 8;
      EXPECT_FLOAT_EQ(row[0], future ? 0.0f : static_cast<float>((s.value[day] - 50.0) / 10.0)) << j << " " << t;
      for (int k = 1; k <= 7; ++k) EXPECT_EQ(row[k], k == s.weekday[day] ? 1.0f : 0.0f) << j << " " << t;
      const double angle = 2.0 * std::numbers::pi * static_cast<double>(day) / 366.0;  // day i is day-of-year i
      EXPECT_NEAR(row[8], std::sin(angle), 1e-6);
      EXPECT_NEAR(row[9], std::cos(angle), 1e-6);
      EXPECT_EQ(row[10], future ? 1.0f : 0.0f);
      EXPECT_EQ(row[11], us_holiday(s.year[day], s.month[day], s.day[day]) ? 1.0f : 0.0f);
    }
    for (int64_t k = 0; k < 3; ++k) {
      const auto d = static_cast<size_t>(e + 1 + k);
      EXPECT_FLOAT_EQ(ex.target.f32()[k], static_cast<float>((s.value[d] - 50.0) / 10.0));
      EXPECT_EQ(w.naive[static_cast<size_t>(j)][static_cast<size_t>(k)], s.value[d - 7]);
      EXPECT_EQ(w.actual[static_cast<size_t>(j)][static_cast<size_t>(k)], s.value[d]);
    }
  }
  // With window 7 the first window starts on day 0, 2024-01-01: a Monday (column 1), cos 1.
  SeriesWindows w0 = make_windows(s, WindowOptions{7, 1, 1}, norm, 0, 119);
  EXPECT_EQ(w0.end_day.front(), 6);
  EXPECT_EQ(w0.data[0].features.f32()[1], 1.0f);
  EXPECT_FLOAT_EQ(w0.data[0].features.f32()[9], 1.0f);
}

TEST(DataSeriesWindows, TargetRangeAndSeasonalLag) {
  DailySeries s = synthetic(60);
  const SeriesNorm norm{0.0, 1.0};
  SeriesWindows w = make_windows(s, WindowOptions{8, 3, 1}, norm, 20, 30);
  // Every target day in [20, 30]: e + 1 >= 20 and e + 3 <= 30.
  ASSERT_EQ(w.data.size(), 9);
  EXPECT_EQ(w.end_day.front(), 19);
  EXPECT_EQ(w.end_day.back(), 27);
  // A window shorter than a week still starts where the seasonal-naive forecast has a lag.
  SeriesWindows shortw = make_windows(s, WindowOptions{3, 2, 1}, norm, 0, 59);
  EXPECT_EQ(shortw.end_day.front(), 6);
  EXPECT_EQ(shortw.data[0].features.dim(0), 5);
  EXPECT_EQ(shortw.naive[0][0], s.value[0]);
  // One window exactly filling the range; the ones past the stride are left out.
  EXPECT_EQ(make_windows(s, WindowOptions{8, 3, 1}, norm, 28, 30).data.size(), 1);
  EXPECT_EQ(make_windows(s, WindowOptions{8, 3, 100}, norm, 0, 59).data.size(), 1);
}

// The message of the recur::Error that `fn` throws ("" if none).
template <class Fn> std::string message_of(Fn&& fn) {
  try {
    fn();
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

TEST(DataSeriesWindows, BadOptionsNameTheValues) {
  DailySeries s = synthetic(30);
  const SeriesNorm norm;
  auto msg = [&](WindowOptions o, int64_t first, int64_t last) {
    return message_of([&] { make_windows(s, o, norm, first, last); });
  };
  EXPECT_NE(msg({31, 3, 1}, 0, 29).find("window is 31, must be in [1, 30]"), std::string::npos);
  EXPECT_NE(msg({0, 3, 1}, 0, 29).find("window is 0"), std::string::npos);
  EXPECT_NE(msg({8, 0, 1}, 0, 29).find("horizon is 0"), std::string::npos);
  EXPECT_NE(msg({8, 3, 0}, 0, 29).find("stride is 0"), std::string::npos);
  EXPECT_NE(msg({8, 3, 1}, 20, 19).find("empty range [20, 19]"), std::string::npos);
  EXPECT_NE(msg({8, 3, 1}, 0, 30).find("range [0, 30] is outside the series of 30 days"), std::string::npos);
  std::string m = msg({8, 3, 1}, 10, 11);  // only two target days in range, horizon 3
  EXPECT_NE(m.find("no window of 8 days with horizon 3 has all its target days in [10, 11]"), std::string::npos)
      << m;
  m = msg({28, 3, 1}, 0, 29);  // the window leaves no room for a horizon of 3
  EXPECT_NE(m.find("no window of 28 days"), std::string::npos) << m;
}

TEST(DataSeriesNorm, UsesOnlyTheGivenRange) {
  DailySeries s = synthetic(30);
  for (size_t i = 0; i < 30; ++i) s.value[i] = i < 10 ? (i % 2 == 0 ? 1.0 : 3.0) : 1e6;
  SeriesNorm n = fit_norm(s, 0, 9);
  EXPECT_DOUBLE_EQ(n.mean, 2.0);
  EXPECT_DOUBLE_EQ(n.std, 1.0);
  n = fit_norm(s, 1, 2);
  EXPECT_DOUBLE_EQ(n.mean, 2.0);
  EXPECT_DOUBLE_EQ(n.std, 1.0);
  EXPECT_NE(message_of([&] { fit_norm(s, 10, 29); }).find("constant"), std::string::npos);
  EXPECT_NE(message_of([&] { fit_norm(s, 5, 4); }).find("empty range [5, 4]"), std::string::npos);
  EXPECT_NE(message_of([&] { fit_norm(s, -1, 4); }).find("outside the series"), std::string::npos);
}

TEST(DataSeriesNorm, FirstDayOfYear) {
  DailySeries s = synthetic(400);  // 2024-01-01 .. 2025-02-03
  EXPECT_EQ(first_day_of_year(s, 2024), 0);
  EXPECT_EQ(first_day_of_year(s, 2025), 366);
  std::string m = message_of([&] { first_day_of_year(s, 2026); });
  EXPECT_NE(m.find("2026-01-01 is not in the series (2024-01-01 .. 2025-02-03)"), std::string::npos) << m;
}

TEST(DataSeriesReal, BirthsSeasonalNaive) {
  const std::string path = "/tmp/rcache/births/data/data.csv";
  if (!fs::exists(path)) GTEST_SKIP() << path << " not present";
  DailySeries s = read_daily_csv(path, "births");
  ASSERT_EQ(s.size(), 7305);
  EXPECT_EQ(s.year.front(), 1969);
  EXPECT_EQ(s.weekday.front(), 3);
  EXPECT_EQ(s.year.back(), 1988);
  const int64_t test_start = first_day_of_year(s, 1987);
  EXPECT_EQ(test_start, 18 * 365 + 4);  // 1972, 1976, 1980, 1984 were leap years
  const SeriesNorm norm = fit_norm(s, 0, test_start - 1);
  EXPECT_GT(norm.mean, 8000);
  EXPECT_LT(norm.mean, 11000);
  SeriesWindows w = make_windows(s, WindowOptions{}, norm, test_start, s.size() - 1);
  EXPECT_EQ(w.data.size(), 731 - 7 + 1);  // 1987 + 1988 hold 731 days
  double abs_sum = 0;
  int64_t count = 0;
  for (size_t j = 0; j < w.naive.size(); ++j)
    for (size_t k = 0; k < w.naive[j].size(); ++k, ++count) abs_sum += std::abs(w.naive[j][k] - w.actual[j][k]);
  const double mae = abs_sum / static_cast<double>(count);
  std::cout << "seasonal-naive MAE over 1987-1988 windows: " << mae << " births/day (" << w.data.size()
            << " windows, norm mean " << norm.mean << " std " << norm.std << ")\n";
  RecordProperty("seasonal_naive_mae", std::to_string(mae));
  EXPECT_GT(mae, 100);
  EXPECT_LT(mae, 2000);
}

TEST(DataSeriesCalendar, UsHolidays) {
  EXPECT_TRUE(us_holiday(1987, 1, 1));
  EXPECT_TRUE(us_holiday(1987, 7, 4));
  EXPECT_TRUE(us_holiday(1987, 12, 25));
  EXPECT_TRUE(us_holiday(1987, 5, 25));   // last Monday of May 1987
  EXPECT_FALSE(us_holiday(1987, 5, 18));  // a Monday, not the last
  EXPECT_TRUE(us_holiday(1987, 9, 7));    // first Monday of September 1987
  EXPECT_TRUE(us_holiday(1987, 11, 26));  // fourth Thursday of November 1987
  EXPECT_FALSE(us_holiday(1987, 11, 19));
  EXPECT_FALSE(us_holiday(1987, 3, 3));
}

}  // namespace
}  // namespace recur::data
