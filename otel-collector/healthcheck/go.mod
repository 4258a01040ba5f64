module github.com/tbmon/healthcheck

go 1.24
