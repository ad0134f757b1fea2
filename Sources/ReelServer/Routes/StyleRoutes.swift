import Hummingbird
import ReelAPI
import ReelCore

/// `GET /v1/styles` and `GET /v1/styles/{name}`: the prompt styles a job's `style` may name, for a web page's
/// style picker or a client that shows the final prompt before submitting.
struct StyleRoutes {
    let styles: StyleLibrary

    func register(on router: Router<BasicRequestContext>) {
        router.get("/v1/styles") { _, _ in try APIJSON.response(DataList(data: styles.styles.map(StyleResource.init))) }
        router.get("/v1/styles/:name") { _, context in
            let name = try context.parameters.require("name")
            let style: Style
            do throws(ReelError) {
                style = try styles.style(named: name)
            } catch {
                // An unknown name in a path is a missing resource, not a bad value; the message keeps the hint.
                throw ReelError(.notFound, field: "style", error.message)
            }
            return try APIJSON.response(StyleResource(style))
        }
    }
}
