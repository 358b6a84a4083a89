module switchboard

go 1.26.8
