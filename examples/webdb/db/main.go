// Command db is a toy database process: it answers requests on
// "db.user.get" with the user record whose id is the request body.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"log"
	"os"
	"os/signal"
	"syscall"
	"time"

	"switchboard"
)

var users = map[string]map[string]string{
	"1": {"id": "1", "name": "Ada Lovelace"},
	"2": {"id": "2", "name": "Alan Turing"},
}

func main() {
	server := flag.String("server", "", "hub URL (default $SWITCHBOARD_URL or the default socket)")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	nc, err := switchboard.Connect(ctx, *server, &switchboard.Options{Name: "db"})
	if err != nil {
		log.Fatal(err)
	}
	// A queue group lets several db processes share the load.
	_, err = nc.QueueSubscribe("db.user.get", "db", func(m *switchboard.Msg) {
		u, ok := users[string(m.Data)]
		if !ok {
			m.Respond([]byte(`{"error":"not found"}`))
			return
		}
		b, _ := json.Marshal(u)
		m.Respond(b)
	})
	if err != nil {
		log.Fatal(err)
	}
	if err := nc.Flush(ctx); err != nil {
		log.Fatal(err)
	}
	fmt.Println("ready")
	<-ctx.Done()
	dctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	nc.Drain(dctx)
}
