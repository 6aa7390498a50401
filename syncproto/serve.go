package syncproto

import (
	"context"
	"fmt"
	"runtime/debug"
	"sync"
)

// Serve accepts connections on l and their streams until ctx is canceled,
// running handle for each stream in its own goroutine. A handler owns its
// stream; when it returns, Serve ends the write side and stops reading. A
// panicking handler is logged and its stream reset with CodeInternal; other
// streams and connections carry on.
//
// Serve takes ownership of l. When ctx is canceled it closes every
// connection with CodeUnavailable, closes l, waits for all handlers to
// return (they see ctx canceled and their streams fail) and returns nil. If
// accepting fails for another reason it shuts down the same way and returns
// that error.
func Serve(ctx context.Context, l *Listener, handle func(ctx context.Context, conn *Conn, stream *Stream)) error {
	return serve(ctx, l, handle, connHooks{})
}

// connHooks let a Server keep per-connection state around Serve.
type connHooks struct {
	// admit, when not nil, runs for each accepted connection; an error
	// closes the connection with the error's code and message, and
	// nothing else runs for it.
	admit func(*Conn) error
	// ended, when not nil, runs once per admitted connection after it
	// closed and all its stream handlers returned, so per-connection
	// state (a session) outlives every stream that uses it.
	ended func(*Conn)
}

// serve is Serve with hooks.
func serve(ctx context.Context, l *Listener, handle func(context.Context, *Conn, *Stream), hooks connHooks) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var conns sync.WaitGroup
	var err error
	for {
		conn, aerr := l.Accept(ctx)
		if aerr != nil {
			if ctx.Err() == nil {
				err = fmt.Errorf("syncproto: serve: %w", aerr)
			}
			break
		}
		if hooks.admit != nil {
			if err := hooks.admit(conn); err != nil {
				_ = conn.CloseWithError(CodeOf(err), WireError(err).Message)
				continue
			}
		}
		conns.Go(func() {
			serveConn(ctx, conn, handle)
			if hooks.ended != nil {
				hooks.ended(conn)
			}
		})
	}
	// Close connections with a code the clients understand before the
	// listener drops them without a word; each serveConn waits for its
	// handlers.
	cancel()
	conns.Wait()
	if cerr := l.Close(); err == nil && cerr != nil {
		err = fmt.Errorf("syncproto: serve: close listener: %w", cerr)
	}
	return err
}

// serveConn runs the streams of one connection and returns when the
// connection is gone and all its handlers have returned. Handlers get a
// context canceled on shutdown or when their connection closes.
func serveConn(ctx context.Context, conn *Conn, handle func(context.Context, *Conn, *Stream)) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stop := context.AfterFunc(conn.Context(), cancel)
	defer stop()
	var streams sync.WaitGroup
	defer streams.Wait()
	log := conn.conf.Logger
	for {
		s, err := conn.AcceptStream(ctx)
		if err != nil {
			if ctx.Err() != nil {
				_ = conn.CloseWithError(CodeUnavailable, "server shutting down")
			}
			return
		}
		streams.Go(func() {
			defer func() {
				if r := recover(); r != nil {
					log.Error("syncproto: stream handler panicked",
						"remote", conn.RemoteAddr().String(), "stream", s.ID(),
						"panic", fmt.Sprint(r), "stack", string(debug.Stack()))
					s.Reset(CodeInternal)
					return
				}
				s.finish(ctx)
			}()
			handle(ctx, conn, s)
		})
	}
}
