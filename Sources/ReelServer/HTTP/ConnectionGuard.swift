import HTTPTypes
import NIOCore
import NIOHTTPTypes
import ReelAPI

/// Whether bytes have arrived on a connection since it last became idle: shared by the raw `ByteWatcher` at the
/// front of the pipeline and the `ConnectionGuard` behind the HTTP decoder, on the connection's event loop.
final class ByteActivity {
    var sinceIdle = false
}

@available(*, unavailable)
extension ByteActivity: Sendable {}

/// Notes that bytes arrived, before the HTTP decoder turns them into parts (a head that trickles in produces none).
final class ByteWatcher: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = ByteBuffer

    let activity: ByteActivity

    init(activity: ByteActivity) {
        self.activity = activity
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        activity.sinceIdle = true
        context.fireChannelRead(data)
    }
}

@available(*, unavailable)
extension ByteWatcher: Sendable {}

/// Keeps one HTTP/1.1 connection within bounds, between the HTTP decoder and Hummingbird's request handling:
///
/// - A connection that has not sent a complete request head within `timeout` of opening, or of its last response,
///   is closed (with a 408 when it had sent part of one); a body that pauses for `timeout` while the server is
///   asking for it fails its request with a 408, delivered to the route as the error of its body.
/// - A decoding error before a request head (a bad request line, oversized headers) is answered here with the API's
///   JSON error (400 or 431) and the connection closed, instead of Hummingbird's empty 400. One in the middle of a
///   body is passed on to the route reading it, which answers through `ErrorMiddleware`; the connection closes after
///   that answer, and anything Hummingbird writes after it is dropped.
/// - The connection's idle or busy state is kept in the `ConnectionRegistry`; one the registry refused is answered
///   503 and closed.
final class ConnectionGuard: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPRequestPart
    typealias InboundOut = HTTPRequestPart
    typealias OutboundIn = HTTPResponsePart
    typealias OutboundOut = HTTPResponsePart

    private let registry: ConnectionRegistry
    private let ticket: ConnectionRegistry.Ticket
    private let timeout: Duration
    private let activity: ByteActivity
    private let presence: ClientPresence

    private var started = false
    /// A request head was read and its end not yet.
    private var requestOpen = false
    /// Requests read whose response has not ended.
    private var unanswered = 0
    /// The response being written has its head out.
    private var responseStarted = false
    /// A decoding error was seen: the decoder produces nothing more, further errors are its echoes.
    private var failed = false
    /// Close once the response in progress has ended.
    private var closeAfterResponse = false
    /// An error answer waiting for the response in progress to end (a bad head pipelined behind a good request).
    private var pendingAnswer: APIError?
    /// The connection is being closed: nothing more is written.
    private var closing = false
    private var timer: Scheduled<Void>?

    init(
        registry: ConnectionRegistry, ticket: ConnectionRegistry.Ticket, timeout: Duration, activity: ByteActivity,
        presence: ClientPresence
    ) {
        self.presence = presence
        self.registry = registry
        self.ticket = ticket
        self.timeout = timeout
        self.activity = activity
    }

    func handlerAdded(context: ChannelHandlerContext) {
        if context.channel.isActive { start(context) }
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        cancelTimer()
    }

    func channelActive(context: ChannelHandlerContext) {
        start(context)
        context.fireChannelActive()
    }

    func channelInactive(context: ChannelHandlerContext) {
        cancelTimer()
        registry.remove(ticket.id)
        presence.markGone()
        context.fireChannelInactive()
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        // The client closed its side: it sends nothing more, and an event stream to it has no reader.
        if case .inputClosed = event as? ChannelEvent { presence.markGone() }
        context.fireUserInboundEventTriggered(event)
    }

    private func start(_ context: ChannelHandlerContext) {
        guard !started else { return }
        started = true
        guard ticket.admitted else {
            answer(HTTPProtocolError.tooManyConnections(registry.limit), context: context)
            return
        }
        becomeIdle(context)
    }

    // MARK: Requests in

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        // After a failure outside a request (or a refusal), what the decoder still passes on belongs to nothing.
        if closing || (failed && !requestOpen) { return }
        switch unwrapInboundIn(data) {
        case .head(let head) where head.method == .connect:
            // NIO's encoder writes any answer to CONNECT without a body (as a 2xx one must be), so the refusal goes
            // out as bytes, past the HTTP handlers.
            failed = true
            answerBelowHTTP(HTTPProtocolError.connect, context: context)
            return
        case .head:
            requestOpen = true
            unanswered += 1
            registry.setIdle(ticket.id, false)
            cancelTimer()
        case .body:
            // The body timer runs only while the server waits for the client (see `read`).
            cancelTimer()
        case .end:
            requestOpen = false
            cancelTimer()
            if unanswered == 0 { becomeIdle(context) }
        }
        context.fireChannelRead(data)
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        guard !failed, !closing else { return }
        failed = true
        cancelTimer()
        if requestOpen {
            if unanswered > 0 && !responseStarted {
                // The route is reading (or will read) this body: let it fail and answer, then close.
                closeAfterResponse = true
                context.fireErrorCaught(error)
            } else if unanswered > 0 {
                closeAfterResponse = true
            } else {
                close(context)
            }
            return
        }
        let apiError = HTTPProtocolError.apiError(for: error)
        if unanswered == 0 {
            answer(apiError, context: context)
        } else {
            pendingAnswer = apiError
        }
    }

    /// The server asks for more bytes. A body's pause counts only from here: while the route is not reading
    /// (busy elsewhere, or its buffer full), no read is asked for, and the client is not to blame.
    func read(context: ChannelHandlerContext) {
        if requestOpen && timer == nil && !closing && !failed { armTimer(context, head: false) }
        context.read()
    }

    // MARK: Responses out

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        guard !closing else {
            promise?.fail(ChannelError.ioOnClosedChannel)
            return
        }
        switch unwrapOutboundIn(data) {
        case .head(let head):
            // An informational head (100 Continue) is not the response.
            if head.status.kind != .informational { responseStarted = true }
            // An answer that says it closes the connection (a 413 whose body is left unread) does, once it is
            // written, even while the client is still sending.
            if let connection = head.headerFields[.connection], connection.lowercased().contains("close") {
                closeAfterResponse = true
            }
            context.write(data, promise: promise)
        case .body:
            context.write(data, promise: promise)
        case .end:
            responseStarted = false
            unanswered = max(0, unanswered - 1)
            if unanswered == 0 && closeAfterResponse && pendingAnswer == nil {
                // Closed once this end has reached the socket: closing now would discard it unwritten.
                closing = true
                cancelTimer()
                let written = context.eventLoop.makePromise(of: Void.self)
                if let promise { written.futureResult.cascade(to: promise) }
                context.write(data, promise: written)
                let channel = context.channel
                written.futureResult.whenComplete { _ in channel.close(promise: nil) }
                return
            }
            context.write(data, promise: promise)
            guard unanswered == 0 else { return }
            if let pendingAnswer {
                answer(pendingAnswer, context: context)
            } else if !requestOpen {
                becomeIdle(context)
            }
        }
    }

    // MARK: Timing

    private func becomeIdle(_ context: ChannelHandlerContext) {
        activity.sinceIdle = false
        registry.setIdle(ticket.id, true)
        armTimer(context, head: true)
    }

    private func armTimer(_ context: ChannelHandlerContext, head: Bool) {
        cancelTimer()
        let nanoseconds = timeout.components.seconds * 1_000_000_000 + timeout.components.attoseconds / 1_000_000_000
        timer = context.eventLoop.assumeIsolated().scheduleTask(in: .nanoseconds(nanoseconds)) { [self] in
            timer = nil
            timedOut(context, head: head)
        }
    }

    private func cancelTimer() {
        timer?.cancel()
        timer = nil
    }

    private func timedOut(_ context: ChannelHandlerContext, head: Bool) {
        guard !closing else { return }
        if head {
            // An idle keep-alive connection just closes; one that sent part of a head is told why.
            if activity.sinceIdle {
                answer(HTTPProtocolError.timeout(timeout, head: true), context: context)
            } else {
                close(context)
            }
        } else if requestOpen && unanswered > 0 && !responseStarted && !failed {
            failed = true
            closeAfterResponse = true
            context.fireErrorCaught(HTTPProtocolError.timeout(timeout, head: false))
        } else {
            close(context)
        }
    }

    // MARK: Answering and closing

    /// Writes `error` as the API's JSON error, then closes the connection.
    private func answer(_ error: APIError, context: ChannelHandlerContext) {
        guard !closing else { return }
        pendingAnswer = nil
        var headers = error.headers
        let body = (try? APIJSON.encode(error.body)) ?? ByteBuffer()
        headers[.contentType] = "application/json; charset=utf-8"
        headers[.contentLength] = String(body.readableBytes)
        headers[.connection] = "close"
        context.write(wrapOutboundOut(.head(HTTPResponse(status: error.status, headerFields: headers))), promise: nil)
        context.write(wrapOutboundOut(.body(body)), promise: nil)
        let channel = context.channel
        closing = true
        cancelTimer()
        context.writeAndFlush(wrapOutboundOut(.end(nil))).whenComplete { _ in channel.close(promise: nil) }
    }

    /// Writes `error` as a whole HTTP/1.1 response straight to the socket, then closes the connection.
    private func answerBelowHTTP(_ error: APIError, context: ChannelHandlerContext) {
        guard !closing, let front = try? context.pipeline.syncOperations.context(handlerType: ByteWatcher.self) else {
            close(context)
            return
        }
        closing = true
        cancelTimer()
        let body = (try? APIJSON.encode(error.body)) ?? ByteBuffer()
        var head = "HTTP/1.1 \(error.status.code) \(error.status.reasonPhrase)\r\n"
        for field in error.headers where field.name != .contentLength && field.name != .contentType {
            head += "\(field.name): \(field.value)\r\n"
        }
        head += "Content-Type: application/json; charset=utf-8\r\nContent-Length: \(body.readableBytes)\r\n\r\n"
        var bytes = ByteBuffer(string: head)
        bytes.writeImmutableBuffer(body)
        let channel = context.channel
        front.writeAndFlush(NIOAny(bytes)).whenComplete { _ in channel.close(promise: nil) }
    }

    /// Closes a connection that has nothing in flight to it.
    private func close(_ context: ChannelHandlerContext) {
        guard !closing else { return }
        closing = true
        cancelTimer()
        context.close(promise: nil)
    }
}

@available(*, unavailable)
extension ConnectionGuard: Sendable {}
