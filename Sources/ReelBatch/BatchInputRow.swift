import ReelCore

/// One row of a batch as read, before any model or limit is applied: its number as the user sees it, and its typed
/// fields or what is wrong with their form.
public struct BatchInputRow: Sendable, Equatable {
    /// The row's number: a CSV's as a spreadsheet shows it (the header is row 1), a JSON batch's job from 1.
    public var row: Int
    public var fields: Result<SpecRow, ReelError>

    public init(row: Int, fields: Result<SpecRow, ReelError>) {
        self.row = row
        self.fields = fields
    }
}
