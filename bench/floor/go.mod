module tbmon/bench/floor

go 1.24
