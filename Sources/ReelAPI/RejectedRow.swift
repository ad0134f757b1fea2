/// A row of a batch that did not become a job: its number as the user sees it (a CSV's first data row is 2, a JSON
/// batch's first job is 1), the column at fault when one is, and what is wrong.
public struct RejectedRow: Sendable, Equatable, Codable {
    public var row: Int
    public var column: String?
    public var message: String

    public init(row: Int, column: String?, message: String) {
        self.row = row
        self.column = column
        self.message = message
    }
}
