import Foundation
import Hummingbird
import HummingbirdCore
import NIOCore
import NIOHTTP1
import NIOWebSocket
import ReelCore

/// ComfyUI's WebSocket, `/ws?clientId=ID` (and `/api/ws`), upgraded from the first request of a connection: on
/// connect a `status` with the socket's `sid`, then `ComfyHub`'s messages as text frames. Only text frames go out
/// (ComfyUI's previews are off by default, and some clients take any binary frame as an image). With API keys, the
/// upgrade needs `Authorization: Bearer KEY` or `?token=KEY`.
enum ComfyWebSocket {
    /// Why a WebSocket upgrade was refused, as the answer the client gets.
    struct Refused: Error {
        var error: APIError
    }

    /// What the upgrade needs from the server.
    struct Context: Sendable {
        var hub: ComfyHub
        var keys: APIKeys?
        /// `queue_remaining` for a tenant, for the first `status`.
        var queueRemaining: @Sendable (String?) async -> Int
    }

    static func isPath(_ uri: String) -> Bool {
        let path = URI(uri).path
        return path == "/ws" || path == "/api/ws"
    }

    static func query(_ uri: String, _ name: Substring) -> String? {
        URI(uri).queryParameters[name].map(String.init)
    }

    /// The tenant an upgrade request speaks for: `.some(nil)` without keys, nil when its key is missing or wrong.
    static func owner(_ head: HTTPRequestHead, keys: APIKeys?) -> String?? {
        guard let keys, !keys.isEmpty else { return .some(nil) }
        var presented = query(head.uri, "token")
        if let header = head.headers.first(name: "authorization"), let token = APIKeys.bearerToken(header) {
            presented = token
        }
        guard let presented, let key = keys.key(for: presented) else { return nil }
        return .some(key.id)
    }

    /// The upgrader for a connection's pipeline; `httpHandlers` are the HTTP handlers to take out once upgraded
    /// (the upgrade takes out NIO's codec itself). The WebSocket handlers go first in the pipeline, and read
    /// everything: nothing reaches the HTTP side again.
    static func upgrader(
        context: Context, httpHandlers: @escaping @Sendable () -> [any RemovableChannelHandler]
    ) -> NIOWebSocketServerUpgrader {
        NIOWebSocketServerUpgrader(
            maxFrameSize: 1 << 16, automaticErrorHandling: false,
            shouldUpgrade: { channel, head in
                // A refusal fails the upgrade; ConnectionGuard answers it with the API's JSON error.
                guard isPath(head.uri) else {
                    return channel.eventLoop.makeFailedFuture(
                        Refused(
                            error: APIError(
                                status: .badRequest,
                                ReelError(.invalidValue, field: "Upgrade", "only /ws and /api/ws are WebSockets"))))
                }
                guard owner(head, keys: context.keys) != nil else {
                    return channel.eventLoop.makeFailedFuture(
                        Refused(
                            error: AuthMiddleware<BasicRequestContext>.unauthorized(
                                .missingAPIKey,
                                "this server requires an API key: send 'Authorization: Bearer YOUR_KEY', or add "
                                    + "token=YOUR_KEY to the socket's URL",
                                challenge: #"Bearer realm="reel""#)))
                }
                return channel.eventLoop.makeSucceededFuture(HTTPHeaders())
            },
            upgradePipelineHandler: { channel, head in
                let owner = owner(head, keys: context.keys) ?? nil
                let sid =
                    query(head.uri, "clientId").flatMap { $0.isEmpty ? nil : String($0.prefix(200)) }
                    ?? UUID().uuidString.lowercased().replacingOccurrences(of: "-", with: "")
                let handler = ComfyWebSocketHandler(sid: sid, owner: owner, context: context)
                let sync = channel.pipeline.syncOperations
                for h in httpHandlers() { sync.removeHandler(h, promise: nil) }
                do {
                    // The upgrade put NIO's frame codec at the end of the pipeline, behind the HTTP side's async
                    // channel, which must see none of the frames: a codec and the session go first instead, and
                    // the session reads every frame and writes through its own context, so nothing reaches the
                    // rest of the pipeline.
                    try sync.addHandlers(
                        [
                            WebSocketFrameEncoder(), ByteToMessageHandler(WebSocketFrameDecoder(maxFrameSize: 1 << 16)),
                            handler,
                        ],
                        position: .first)
                    return channel.eventLoop.makeSucceededVoidFuture()
                } catch {
                    return channel.eventLoop.makeFailedFuture(error)
                }
            })
    }
}

/// One ComfyUI WebSocket: registers with the hub, writes its messages as text frames in order, answers pings and
/// closes, and replies to `feature_flags`.
final class ComfyWebSocketHandler: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = WebSocketFrame
    typealias OutboundOut = WebSocketFrame

    let sid: String
    let owner: String?
    let context: ComfyWebSocket.Context
    private var sessionID: Int?
    private var closing = false

    init(sid: String, owner: String?, context: ComfyWebSocket.Context) {
        self.sid = sid
        self.owner = owner
        self.context = context
    }

    func handlerAdded(context ctx: ChannelHandlerContext) {
        let channel = ctx.channel
        let loop = ctx.eventLoop
        let (stream, continuation) = AsyncStream<String>.makeStream(bufferingPolicy: .bufferingNewest(4096))
        let send: @Sendable (String) -> Void = { continuation.yield($0) }
        sessionID = context.hub.add(.init(sid: sid, owner: owner, send: send))
        let (sid, owner, queueRemaining) = (sid, owner, context.queueRemaining)
        channel.closeFuture.whenComplete { _ in continuation.finish() }
        // Frames go out through this handler's context, towards the codec; the pipeline's tail is the HTTP side's.
        let bound = NIOLoopBound(ctx, eventLoop: loop)
        Task {
            let remaining = await queueRemaining(owner)
            continuation.yield(ComfyHub.status(queueRemaining: remaining, sid: sid))
        }
        Task {
            for await text in stream {
                let written = loop.flatSubmit {
                    let ctx = bound.value
                    let frame = WebSocketFrame(
                        fin: true, opcode: .text, data: ctx.channel.allocator.buffer(string: text))
                    return ctx.writeAndFlush(NIOAny(frame))
                }
                do {
                    try await written.get()
                } catch {
                    break
                }
            }
        }
    }

    func handlerRemoved(context ctx: ChannelHandlerContext) {
        if let sessionID { context.hub.remove(sessionID) }
        sessionID = nil
    }

    func channelInactive(context ctx: ChannelHandlerContext) {
        if let sessionID { context.hub.remove(sessionID) }
        sessionID = nil
        ctx.fireChannelInactive()
    }

    func channelRead(context ctx: ChannelHandlerContext, data: NIOAny) {
        let frame = unwrapInboundIn(data)
        switch frame.opcode {
        case .ping:
            let pong = WebSocketFrame(fin: true, opcode: .pong, data: frame.unmaskedData)
            ctx.writeAndFlush(wrapOutboundOut(pong), promise: nil)
        case .connectionClose:
            close(ctx, code: .normalClosure)
        case .text:
            let text = String(buffer: frame.unmaskedData)
            if let value = try? JSONDecoder().decode(ComfyValue.self, from: Data(text.utf8)),
                value.object?["type"]?.string == "feature_flags"
            {
                let reply = ComfyHub.message("feature_flags", ["supports_preview_metadata": false])
                let out = WebSocketFrame(fin: true, opcode: .text, data: ctx.channel.allocator.buffer(string: reply))
                ctx.writeAndFlush(wrapOutboundOut(out), promise: nil)
            }
        default:
            break
        }
    }

    func userInboundEventTriggered(context ctx: ChannelHandlerContext, event: Any) {
        // The server is shutting down: the socket closes, so that it holds nothing up.
        if event is ChannelShouldQuiesceEvent {
            close(ctx, code: .goingAway)
        }
        ctx.fireUserInboundEventTriggered(event)
    }

    func errorCaught(context ctx: ChannelHandlerContext, error: any Error) {
        close(ctx, code: .protocolError)
    }

    private func close(_ ctx: ChannelHandlerContext, code: WebSocketErrorCode) {
        guard !closing else { return }
        closing = true
        var data = ctx.channel.allocator.buffer(capacity: 2)
        data.write(webSocketErrorCode: code)
        let frame = WebSocketFrame(fin: true, opcode: .connectionClose, data: data)
        let channel = ctx.channel
        ctx.writeAndFlush(wrapOutboundOut(frame)).whenComplete { _ in channel.close(promise: nil) }
    }
}

@available(*, unavailable)
extension ComfyWebSocketHandler: Sendable {}
