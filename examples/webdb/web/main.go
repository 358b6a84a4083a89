// Command web is a toy web server: GET /user?id=N asks the database
// process over Switchboard and returns its answer; when no database process
// runs it answers 503 at once instead of hanging.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"switchboard"
)

func main() {
	server := flag.String("server", "", "hub URL (default $SWITCHBOARD_URL or the default socket)")
	addr := flag.String("addr", "127.0.0.1:8080", "HTTP listen address")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	nc, err := switchboard.Connect(ctx, *server, &switchboard.Options{Name: "web"})
	if err != nil {
		log.Fatal(err)
	}
	defer nc.Close()

	http.HandleFunc("/user", func(w http.ResponseWriter, r *http.Request) {
		rctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
		defer cancel()
		m, err := nc.Request(rctx, "db.user.get", []byte(r.URL.Query().Get("id")))
		switch {
		case errors.Is(err, switchboard.ErrNoResponders):
			http.Error(w, "database unavailable", http.StatusServiceUnavailable)
		case errors.Is(err, switchboard.ErrTimeout):
			http.Error(w, "database timed out", http.StatusGatewayTimeout)
		case err != nil:
			http.Error(w, err.Error(), http.StatusBadGateway)
		default:
			w.Header().Set("Content-Type", "application/json")
			w.Write(m.Data)
		}
	})
	l, err := net.Listen("tcp", *addr)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("listening", l.Addr())
	srv := &http.Server{}
	go func() {
		<-ctx.Done()
		srv.Close()
	}()
	if err := srv.Serve(l); !errors.Is(err, http.ErrServerClosed) {
		log.Fatal(err)
	}
}
