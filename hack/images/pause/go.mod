module asynctask.dev/hack/images/pause

go 1.25.0
