import HummingbirdCore
import Logging
import NIOCore
import NIOHTTP1
import NIOHTTPTypes
import NIOHTTPTypesHTTP1
import NIOWebSocket

/// Hummingbird's HTTP/1.1 child channel with Reel's guards in its pipeline: the same handlers as `HTTP1Channel`
/// (NIO's HTTP/1 codec, the conversion to Swift HTTP Types, Hummingbird's connection state for graceful shutdown),
/// plus a `ByteWatcher` in front and a `ConnectionGuard` behind the decoder (timeouts, protocol errors as the API's
/// JSON errors, the connection cap).
struct ReelHTTPChannel: ServerChildChannel, HTTPChannelHandler {
    /// One connection: its channel, and whether its client is still there.
    struct Connection: ServerChildChannelValue {
        let asyncChannel: NIOAsyncChannel<HTTPRequestPart, HTTPResponsePart>
        let presence: ClientPresence
        var channel: any Channel { asyncChannel.channel }
    }

    typealias Value = Connection

    let responder: HTTPChannelHandler.Responder
    let registry: ConnectionRegistry
    /// How long a connection may take to send a request head, or pause within a body.
    let requestTimeout: Duration
    /// ComfyUI's WebSocket (`/ws`), which a connection's first request may upgrade to; nil for none.
    var webSocket: ComfyWebSocket.Context? = nil

    /// The server builder to give `Application`.
    static func builder(
        registry: ConnectionRegistry, requestTimeout: Duration, webSocket: ComfyWebSocket.Context? = nil
    ) -> HTTPServerBuilder {
        HTTPServerBuilder { responder in
            ReelHTTPChannel(
                responder: responder, registry: registry, requestTimeout: requestTimeout, webSocket: webSocket)
        }
    }

    func setup(channel: any Channel, logger: Logger) -> EventLoopFuture<Value> {
        let ticket = registry.admit(channel)
        return channel.eventLoop.makeCompletedFuture {
            // Until the guard is in the pipeline, nothing would forget this connection when it closes.
            channel.closeFuture.whenComplete { [registry] _ in registry.remove(ticket.id) }
            let activity = ByteActivity()
            let presence = ClientPresence()
            var limits = NIOHTTPDecoderLimitConfiguration()
            limits.maxHeaderFieldSize = HTTPProtocolError.maxHeaderBytes
            limits.maxHeaderListSize = HTTPProtocolError.maxHeaderBytes
            limits.maxHeaderFieldCount = HTTPProtocolError.maxHeaderFields
            let pipeline = channel.pipeline.syncOperations
            try pipeline.addHandler(ByteWatcher(activity: activity))
            let codec = HTTP1ToHTTPServerCodec(secure: false)
            let guardHandler = ConnectionGuard(
                registry: registry, ticket: ticket, timeout: requestTimeout, activity: activity, presence: presence)
            let state = HTTPConnectionStateHandler(idleTimeout: nil, logger: logger)
            // Taken out on the channel's event loop, as the upgrade runs: the handlers are this connection's.
            let httpHandlers = NIOLoopBound(
                [codec, guardHandler, state] as [any RemovableChannelHandler], eventLoop: channel.eventLoop)
            let upgrade: NIOHTTPServerUpgradeConfiguration? = webSocket.map { context in
                let upgrader = ComfyWebSocket.upgrader(context: context) { httpHandlers.value }
                return (upgraders: [upgrader], completionHandler: { _ in })
            }
            try pipeline.configureHTTPServerPipeline(
                withPipeliningAssistance: false,  // NIOAsyncChannel serialises requests
                withServerUpgrade: upgrade,
                withErrorHandling: false,  // ConnectionGuard answers errors
                withOutboundHeaderValidation: false,  // Swift HTTP Types validate them
                withEncoderConfiguration: .init(),
                withDecoderLimitConfiguration: limits
            )
            try pipeline.addHandler(codec)
            try pipeline.addHandler(guardHandler)
            try pipeline.addHandler(state)
            let asyncChannel = try NIOAsyncChannel<HTTPRequestPart, HTTPResponsePart>(
                wrappingChannelSynchronously: channel, configuration: .init(isOutboundHalfClosureEnabled: true))
            return Connection(asyncChannel: asyncChannel, presence: presence)
        }
    }

    func handle(value connection: Connection, logger: Logger) async {
        await ClientPresence.$current.withValue(connection.presence) {
            await handleHTTP(asyncChannel: connection.asyncChannel, logger: logger)
        }
    }
}
